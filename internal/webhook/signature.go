package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	// HeaderEvent carries the event's kind, e.g. "job.succeeded".
	HeaderEvent = "Gantry-Event"
	// HeaderDelivery identifies the delivery as "<webhook id>:<seq>". It is
	// the same on every attempt to deliver one event, so receivers can use
	// it to drop duplicates (delivery is at least once).
	HeaderDelivery = "Gantry-Delivery"
	// HeaderSignature carries the signature; see [Sign].
	HeaderSignature = "Gantry-Signature"
)

// DefaultTolerance is the age limit [Verify] applies when it is given none.
const DefaultTolerance = 5 * time.Minute

// Errors of [Verify].
var (
	// ErrSignature: the header is missing or malformed, or no signature in
	// it matches the body.
	ErrSignature = errors.New("webhook: invalid signature")
	// ErrStale: the signature is valid but its timestamp is outside the
	// tolerance (a replay, or a clock far off).
	ErrStale = errors.New("webhook: signature timestamp outside tolerance")
)

// Sign returns the Gantry-Signature header of a delivery of body made at t:
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>.<body>")>
//
// The key is the webhook's secret exactly as it was shown on creation (its
// bytes, not a decoding of them). The scheme is Stripe's: signing the
// timestamp with the body lets a receiver refuse old deliveries replayed
// by whoever captured one. Receivers check it with [Verify].
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

// mac is the hex HMAC-SHA256 of "<ts>.<body>" under secret.
func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's Gantry-Signature header (see [Sign]) against
// the webhook's secret and the request body exactly as received. It accepts
// the header when one of its v1 signatures matches (several may be present;
// unknown schemes are ignored) and its timestamp is within tolerance of the
// receiver's clock, in either direction; a tolerance <= 0 means
// [DefaultTolerance]. It returns nil, or an error wrapping [ErrSignature]
// or [ErrStale].
func Verify(secret string, header string, body []byte, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed element %q", ErrSignature, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", ErrSignature)
			}
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts == "" {
		return fmt.Errorf("%w: no timestamp", ErrSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < 0 {
		return fmt.Errorf("%w: malformed timestamp %q", ErrSignature, ts)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrSignature)
	}
	want := []byte(mac(secret, ts, body))
	match := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			match = true
		}
	}
	if !match {
		return fmt.Errorf("%w: no signature matches the body", ErrSignature)
	}
	age := time.Since(time.Unix(sec, 0))
	if age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrStale, age.Round(time.Second), tolerance)
	}
	return nil
}
