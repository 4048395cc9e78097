package mattermost

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"

	"github.com/opsbot/opsbot/bot"
)

// Registered tokens are read from the store at most this often: on a token
// no one knows (a command registered a moment ago, perhaps by another
// replica), and before trusting a list older than storedTTL (a command
// removed since).
const (
	storedRetry = time.Second
	storedTTL   = 30 * time.Second
)

// storedTokens is the cache of the digests of the tokens that opsbot
// mattermost register keeps in the store.
type storedTokens struct {
	src bot.CommandTokens
	mu  sync.Mutex
	at  time.Time
	set [][sha256.Size]byte
}

// match reports whether d is the digest of a registered command's token.
func (s *storedTokens) match(ctx context.Context, d [sha256.Size]byte, now time.Time) (bool, error) {
	if s == nil || s.src == nil {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.at) > storedTTL {
		if err := s.load(ctx, now); err != nil {
			return false, err
		}
	}
	if anyEqual(s.set, d) {
		return true, nil
	}
	if now.Sub(s.at) < storedRetry {
		return false, nil
	}
	if err := s.load(ctx, now); err != nil {
		return false, err
	}
	return anyEqual(s.set, d), nil
}

func (s *storedTokens) load(ctx context.Context, now time.Time) error {
	list, err := s.src.CommandTokens(ctx, Platform)
	if err != nil {
		return err
	}
	set := make([][sha256.Size]byte, 0, len(list))
	for _, t := range list {
		var d [sha256.Size]byte
		if b, err := hex.DecodeString(t.TokenSHA256); err == nil && len(b) == sha256.Size {
			copy(d[:], b)
			set = append(set, d)
		}
	}
	s.set, s.at = set, now
	return nil
}

// anyEqual compares d with every digest, never stopping early.
func anyEqual(set [][sha256.Size]byte, d [sha256.Size]byte) bool {
	match := 0
	for i := range set {
		match |= subtle.ConstantTimeCompare(d[:], set[i][:])
	}
	return match == 1
}
