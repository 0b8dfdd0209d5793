package gantry

import (
	"errors"
	"fmt"
	"time"
)

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryAfterError carries the delay before the next attempt.
type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// Permanent wraps err so that the job fails at once, without retry, whatever
// attempts it has left. A nil err gives a generic permanent error.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &permanentError{err: err}
}

// RetryAfter wraps err so that the next attempt waits d instead of the
// backoff policy's delay. The attempt still counts against max_attempts.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		err = fmt.Errorf("retry after %s", d)
	}
	if d < 0 {
		d = 0
	}
	return &retryAfterError{err: err, delay: d}
}

// IsPermanent reports whether err, or an error it wraps, came from [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RetryDelay returns the delay set by [RetryAfter] on err or an error it
// wraps, and whether one was set.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.delay, true
	}
	return 0, false
}
