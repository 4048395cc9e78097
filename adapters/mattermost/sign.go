package mattermost

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Mattermost sends a button's integration context back unsigned, so the
// context carries its own HMAC. The server strips integrations from posts it
// sends to clients, so only the server (or someone who forges a request to
// /mattermost/action) presents a context: the signature is what tells the two
// apart.

// Keys of a button's integration context.
const (
	ctxVersion = "v"
	ctxLine    = "line"
	ctxRef     = "ref"
	ctxChannel = "channel"
	ctxExpires = "exp"
	ctxSig     = "sig"

	signVersion = "1"
)

// action is what a button's context binds: the command line a click runs,
// the approval or request it is about, the channel the button was posted in,
// and when it stops working.
type action struct {
	Line    string
	Ref     string
	Channel string
	Expires time.Time
}

var (
	errUnsigned = errors.New("the button context carries no valid signature")
	errForged   = errors.New("the button context's signature does not match (forged or altered)")
	errExpired  = errors.New("the button has expired")
)

// canonical is the byte string the HMAC covers: a version tag, then every
// field length-prefixed, so no two contexts encode alike.
func canonical(version string, fields ...string) []byte {
	var b strings.Builder
	b.WriteString("opsbot-mattermost-action")
	for _, f := range append([]string{version}, fields...) {
		b.WriteByte('\n')
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
	}
	return []byte(b.String())
}

func (a action) mac(secret []byte, exp string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(canonical(signVersion, a.Line, a.Ref, a.Channel, exp))
	return m.Sum(nil)
}

// context is the signed integration context of a button.
func (a action) context(secret []byte) map[string]any {
	exp := strconv.FormatInt(a.Expires.Unix(), 10)
	return map[string]any{
		ctxVersion: signVersion,
		ctxLine:    a.Line,
		ctxRef:     a.Ref,
		ctxChannel: a.Channel,
		ctxExpires: exp,
		ctxSig:     hex.EncodeToString(a.mac(secret, exp)),
	}
}

// verify checks a context as the server sent it back: every signed field
// present as a string, the HMAC equal (compared in constant time), and the
// expiry not passed at now. It returns the action only when all hold.
func verify(secret []byte, c map[string]any, now time.Time) (action, error) {
	str := func(k string) (string, bool) {
		v, ok := c[k].(string)
		return v, ok
	}
	ver, ok1 := str(ctxVersion)
	line, ok2 := str(ctxLine)
	ref, ok3 := str(ctxRef)
	channel, ok4 := str(ctxChannel)
	exp, ok5 := str(ctxExpires)
	sig, ok6 := str(ctxSig)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || ver != signVersion {
		return action{}, errUnsigned
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return action{}, errUnsigned
	}
	a := action{Line: line, Ref: ref, Channel: channel}
	if !hmac.Equal(got, a.mac(secret, exp)) {
		return action{}, errForged
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return action{}, errForged // signed, yet not ours: treat as forged
	}
	a.Expires = time.Unix(secs, 0)
	if !now.Before(a.Expires) {
		return a, errExpired
	}
	return a, nil
}
