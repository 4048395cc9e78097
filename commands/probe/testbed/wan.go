package testbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A WAN link without netem. This kernel has no sch_netem, so a target can
// be joined to the probe by a tun device in each namespace instead of a
// veth pair, with a relay in the test process between the two devices. The
// relay models what a real path does to packets, per direction:
//
//   - random loss (a share of packets dropped, independently);
//   - a bottleneck of Rate bits per second with a drop-tail queue of Queue
//     packets: each packet leaves the queue after its serialisation time,
//     and one that finds the queue full is dropped;
//   - a one-way delay with jitter, after the bottleneck.
//
// The bottleneck is computed in virtual time from each packet's arrival,
// so a relay that is scheduled late adds latency but never changes which
// packets the queue drops. Packets of one direction stay in order.

// Link describes a WAN link between the probe and one target.
type Link struct {
	Delay  time.Duration // one way, each direction
	Jitter time.Duration // added to Delay, uniform in [0, Jitter)
	// Loss and LossBack: shares of packets dropped at random, probe to
	// target and target to probe (0.02 is 2 %).
	Loss, LossBack float64
	// Rate caps each direction at this many bits per second; 0 is no cap.
	Rate int64
	// Queue is the bottleneck's drop-tail queue in packets; 0 means 1000.
	Queue int
	// Seed makes the random choices repeatable; 0 picks one.
	Seed uint64
}

func (l Link) String() string {
	s := fmt.Sprintf("delay %v", l.Delay)
	if l.Jitter > 0 {
		s += fmt.Sprintf("+%v jitter", l.Jitter)
	}
	if l.Loss > 0 || l.LossBack > 0 {
		s += fmt.Sprintf(", loss %.1f%%/%.1f%%", 100*l.Loss, 100*l.LossBack)
	}
	if l.Rate > 0 {
		s += fmt.Sprintf(", %.1f Mbit/s, queue %d", float64(l.Rate)/1e6, l.queue())
	}
	return s
}

func (l Link) queue() int {
	if l.Queue <= 0 {
		return 1000
	}
	return l.Queue
}

// LinkStats counts what one direction of a link did.
type LinkStats struct {
	Packets   int64 // read from the sending side
	Lost      int64 // dropped at random
	Overflow  int64 // dropped by the full queue
	Delivered int64 // written to the receiving side
}

// wanLink is a running relay between two tun devices.
type wanLink struct {
	cfg        Link
	probe, tgt int       // tun descriptors, non-blocking
	out, back  direction // probe→target, target→probe
	wg         sync.WaitGroup
	closed     atomic.Bool
}

type direction struct {
	stats    struct{ packets, lost, overflow, delivered atomic.Int64 }
	loss     float64
	rng      *rand.Rand
	departs  []time.Time // departure times of packets still in the queue
	lastDue  time.Time
	lastLeft time.Time // when the bottleneck finishes the last queued packet
	mu       sync.Mutex
	cond     *sync.Cond
	pending  []timedPacket
	closed   bool
}

type timedPacket struct {
	due  time.Time
	data []byte
}

// Stats gives what the link did so far, probe to target and back.
func (tg *Target) Stats() (out, back LinkStats) {
	if tg.wan == nil {
		return out, back
	}
	return tg.wan.out.snapshot(), tg.wan.back.snapshot()
}

func (d *direction) snapshot() LinkStats {
	return LinkStats{Packets: d.stats.packets.Load(), Lost: d.stats.lost.Load(), Overflow: d.stats.overflow.Load(), Delivered: d.stats.delivered.Load()}
}

// openTun creates a tun device named name in the namespace at nsPath and
// returns its non-blocking descriptor. The device lives as long as the
// descriptor is open.
func openTun(nsPath, name string) (int, error) {
	f := -1
	err := withNetns(nsPath, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			_ = unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		f = fd
		return nil
	})
	return f, err
}

// startWAN opens the two tun devices of target tg (named like the veth
// ends they replace) and starts the relay; the bed's teardown stops it.
func (b *Bed) startWAN(tg *Target, peer string, cfg Link) error {
	pf, err := openTun(filepath.Join(netnsDir, b.Probe), peer)
	if err != nil {
		return err
	}
	tf, err := openTun(filepath.Join(netnsDir, tg.Netns), "eth0")
	if err != nil {
		_ = unix.Close(pf)
		return err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	w := &wanLink{cfg: cfg, probe: pf, tgt: tf}
	w.out.init(cfg.Loss, seed)
	w.back.init(cfg.LossBack, seed^0x9e3779b97f4a7c15)
	tg.wan = w
	w.wg.Add(4)
	go w.read(pf, &w.out)
	go w.write(tf, &w.out)
	go w.read(tf, &w.back)
	go w.write(pf, &w.back)
	if !b.addCloser(w.close) {
		return w.close()
	}
	return nil
}

func (d *direction) init(loss float64, seed uint64) {
	d.loss = loss
	d.rng = rand.New(rand.NewPCG(seed, seed>>1|1))
	d.cond = sync.NewCond(&d.mu)
}

func (w *wanLink) close() error {
	w.closed.Store(true)
	for _, d := range []*direction{&w.out, &w.back} {
		d.mu.Lock()
		d.closed = true
		d.cond.Broadcast()
		d.mu.Unlock()
	}
	w.wg.Wait() // the readers look at closed every pollEvery
	return errors.Join(unix.Close(w.probe), unix.Close(w.tgt))
}

// pollEvery bounds how long a reader takes to notice teardown.
const pollEvery = 50 // ms

// realtime gives the calling OS thread a real-time priority, so that the
// relay reads each packet when it arrives and sends it when it is due, even
// on a loaded machine: a reader woken late would see a burst the sender
// never sent, and the modelled queue would drop it. Best effort: without
// the privilege the relay runs at normal priority.
func realtime() {
	runtime.LockOSThread()
	_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 10}, 0)
}

// read takes packets from one device and schedules them for the other.
func (w *wanLink) read(from int, d *direction) {
	defer w.wg.Done()
	realtime() // the thread ends with the goroutine: never unlocked
	buf := make([]byte, 65536)
	fds := []unix.PollFd{{Fd: int32(from), Events: unix.POLLIN}}
	for !w.closed.Load() {
		n, err := unix.Read(from, buf)
		if err != nil || n <= 0 {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || err == nil {
				_, _ = unix.Poll(fds, pollEvery)
				continue
			}
			return
		}
		now := time.Now()
		d.stats.packets.Add(1)
		d.mu.Lock()
		if d.loss > 0 && d.rng.Float64() < d.loss {
			d.mu.Unlock()
			d.stats.lost.Add(1)
			continue
		}
		left := now
		if w.cfg.Rate > 0 {
			// The queue holds the packets the bottleneck has not finished.
			k := 0
			for k < len(d.departs) && !d.departs[k].After(now) {
				k++
			}
			d.departs = d.departs[k:]
			if len(d.departs) >= w.cfg.queue() {
				d.mu.Unlock()
				d.stats.overflow.Add(1)
				continue
			}
			start := now
			if d.lastLeft.After(now) {
				start = d.lastLeft
			}
			left = start.Add(time.Duration(int64(n) * 8 * int64(time.Second) / w.cfg.Rate))
			d.lastLeft = left
			d.departs = append(d.departs, left)
		}
		due := left.Add(w.cfg.Delay)
		if w.cfg.Jitter > 0 {
			due = due.Add(time.Duration(d.rng.Int64N(int64(w.cfg.Jitter))))
		}
		if due.Before(d.lastDue) {
			due = d.lastDue // one direction keeps its order
		}
		d.lastDue = due
		d.pending = append(d.pending, timedPacket{due: due, data: append([]byte(nil), buf[:n]...)})
		d.cond.Signal()
		d.mu.Unlock()
	}
}

// write delivers scheduled packets when they fall due.
func (w *wanLink) write(to int, d *direction) {
	defer w.wg.Done()
	realtime()
	for {
		d.mu.Lock()
		for len(d.pending) == 0 && !d.closed {
			d.cond.Wait()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		due := d.pending[0].due
		if wait := time.Until(due); wait > 100*time.Microsecond {
			d.mu.Unlock()
			ts := unix.NsecToTimespec(int64(min(wait, pollEvery*time.Millisecond)))
			_ = unix.Nanosleep(&ts, nil) // on this thread: precise, whatever the runtime's timers do
			continue
		}
		var batch []timedPacket
		now := time.Now().Add(100 * time.Microsecond)
		k := 0
		for k < len(d.pending) && !d.pending[k].due.After(now) {
			k++
		}
		batch = append(batch, d.pending[:k]...)
		d.pending = d.pending[k:]
		d.mu.Unlock()
		for _, p := range batch {
			if _, err := unix.Write(to, p.data); err != nil {
				continue // the kernel refused one packet (no route yet): lost
			}
			d.stats.delivered.Add(1)
		}
	}
}

// SetLoss changes the random loss of a WAN link while it runs (1 drops
// everything): a path that fails, or a target that goes away, mid-scan.
func (tg *Target) SetLoss(loss, lossBack float64) {
	if tg.wan == nil {
		panic("testbed: SetLoss on a target without a WAN link")
	}
	for _, x := range []struct {
		d *direction
		p float64
	}{{&tg.wan.out, loss}, {&tg.wan.back, lossBack}} {
		x.d.mu.Lock()
		x.d.loss = x.p
		x.d.mu.Unlock()
	}
}
