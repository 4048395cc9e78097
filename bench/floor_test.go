package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// floorContender measures the floor of a loopback TCP scan in the same run
// as the tools: blocking connect(2) on every port, split over one OS thread
// per core, raw syscalls, no process to start (DESIGN.md §6: "C blocking
// connect in 2 threads", 0.52 s on the reference machine). Beside opsbot it
// tells a slow engine from a slow machine.
func floorContender(netns string) contender {
	threads := runtime.NumCPU()
	return contender{
		name:     "floor: connect()",
		describe: "in-process, blocking connect(2) to 127.0.0.1:1-65535 on " + strconv.Itoa(threads) + " OS threads inside the namespace (no process start)",
		timeout:  time.Minute,
		fn: func(ctx context.Context) outcome {
			start := time.Now()
			open, err := connectFloor(ctx, filepath.Join("/run/netns", netns), threads)
			o := outcome{d: time.Since(start), err: err, report: newScanReport()}
			o.report.States[stOpen] = open
			return o
		},
	}
}

// connectFloor connects to 127.0.0.1 on every port from threads OS threads
// that entered the namespace at nsPath. A connection whose local port is
// the target port is the kernel connecting the socket to itself, not a
// listener: not counted as open.
func connectFloor(ctx context.Context, nsPath string, threads int) (PortSet, error) {
	var (
		mu   sync.Mutex
		open = PortSet{}
		errs []error
		wg   sync.WaitGroup
	)
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Never unlocked: this thread leaves the namespace only by
			// ending, with its goroutine.
			runtime.LockOSThread()
			ns, err := os.Open(nsPath)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer func() { _ = ns.Close() }()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			var found []uint16
			for p := t + 1; p <= 65535; p += threads {
				if p%4096 == 0 && ctx.Err() != nil {
					break
				}
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if unix.Connect(fd, &unix.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}) == nil {
					if sa, err := unix.Getsockname(fd); err == nil {
						if in4, ok := sa.(*unix.SockaddrInet4); ok && in4.Port != p {
							found = append(found, uint16(p)) //nolint:gosec // p <= 65535
						}
					}
				}
				_ = unix.Close(fd)
			}
			mu.Lock()
			for _, p := range found {
				open[p] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return open, errors.Join(errs...)
}
