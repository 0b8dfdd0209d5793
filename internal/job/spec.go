package job

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// Defaults for a [Spec].
const (
	DefaultQueue       = "default"
	DefaultTenant      = "default"
	DefaultMaxAttempts = 5
	MinPriority        = -100
	MaxPriority        = 100
)

// Limits bounds what a [Spec] may hold. The zero value means [DefaultLimits].
type Limits struct {
	// MaxParamsBytes bounds params. Defaults to 256 KiB.
	MaxParamsBytes int
	// MaxAttempts bounds max_attempts. Defaults to 1000.
	MaxAttempts int
	// MaxTimeout bounds timeout. Defaults to 7 days.
	MaxTimeout time.Duration
	// MaxDelay bounds how far in the future run_at may be. Defaults to 366 days.
	MaxDelay time.Duration
	// MaxTags bounds the number of tags. Defaults to 64.
	MaxTags int
	// MaxMetadata bounds the number of metadata entries. Defaults to 64.
	MaxMetadata int
}

// DefaultLimits are the limits used where none are configured.
var DefaultLimits = Limits{
	MaxParamsBytes: 256 << 10,
	MaxAttempts:    1000,
	MaxTimeout:     7 * 24 * time.Hour,
	MaxDelay:       366 * 24 * time.Hour,
	MaxTags:        64,
	MaxMetadata:    64,
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits
	if l.MaxParamsBytes > 0 {
		d.MaxParamsBytes = l.MaxParamsBytes
	}
	if l.MaxAttempts > 0 {
		d.MaxAttempts = l.MaxAttempts
	}
	if l.MaxTimeout > 0 {
		d.MaxTimeout = l.MaxTimeout
	}
	if l.MaxDelay > 0 {
		d.MaxDelay = l.MaxDelay
	}
	if l.MaxTags > 0 {
		d.MaxTags = l.MaxTags
	}
	if l.MaxMetadata > 0 {
		d.MaxMetadata = l.MaxMetadata
	}
	return d
}

// Spec is what a client submits: a job before it exists.
type Spec struct {
	Tenant       string
	Type         string
	Name         string
	Queue        string
	Priority     int
	Params       json.RawMessage
	Package      string
	BatchID      string
	RunAt        time.Time     // zero: now
	Delay        time.Duration // alternative to RunAt; both set is an error
	MaxAttempts  int           // zero: DefaultMaxAttempts
	Timeout      time.Duration // zero: none
	UniqueKey    string
	SingletonKey string
	Tags         []string
	Metadata     map[string]string
}

// FieldError says which field of a request is wrong and why. The API turns
// it into a problem naming the field.
type FieldError struct {
	Field   string
	Problem string
	// TooLarge is set when the value is over a size limit (params over
	// Limits.MaxParamsBytes): the API answers 413 rather than 422.
	TooLarge bool
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem) }

// Prefix returns a copy of e whose field is prefixed, e.g. "jobs[3]." + field.
func (e *FieldError) Prefix(p string) *FieldError {
	return &FieldError{Field: p + e.Field, Problem: e.Problem, TooLarge: e.TooLarge}
}

var (
	typeRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	nameRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	pkgRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}(@sha256:[0-9a-f]{64})?$`)
)

// ValidName reports whether s is a valid queue, tenant or type name:
// 1 to 128 of [A-Za-z0-9._:-].
func ValidName(s string) bool { return nameRe.MatchString(s) }

// Normalize fills in defaults: tenant, queue, max attempts, and run_at from
// delay. It does not validate; call [Spec.Validate] after it.
func (s *Spec) Normalize(now time.Time) {
	if s.Tenant == "" {
		s.Tenant = DefaultTenant
	}
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.Delay > 0 && s.RunAt.IsZero() {
		s.RunAt = now.Add(s.Delay)
		s.Delay = 0
	}
}

// Validate checks a normalized spec against l and returns a *[FieldError]
// naming the first bad field, or nil.
func (s *Spec) Validate(now time.Time, l Limits) error {
	l = l.orDefault()
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case s.Type == "":
		return bad("type", "is required")
	case !typeRe.MatchString(s.Type):
		return bad("type", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	case !ValidName(s.Tenant):
		return bad("tenant", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	case !ValidName(s.Queue):
		return bad("queue", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	case len(s.Name) > 256 || !utf8.ValidString(s.Name):
		return bad("name", "must be valid UTF-8 of at most 256 bytes")
	case s.Priority < MinPriority || s.Priority > MaxPriority:
		return bad("priority", "must be between %d and %d", MinPriority, MaxPriority)
	case len(s.Params) > l.MaxParamsBytes:
		return &FieldError{Field: "params", TooLarge: true,
			Problem: fmt.Sprintf("is %d bytes, more than the limit of %d", len(s.Params), l.MaxParamsBytes)}
	case len(s.Params) > 0 && !json.Valid(s.Params):
		return bad("params", "is not valid JSON")
	case s.Package != "" && !pkgRe.MatchString(s.Package):
		return bad("package", "must be a package name, optionally @sha256:<64 hex>")
	case s.Delay < 0:
		return bad("delay_seconds", "must not be negative")
	case s.Delay > 0:
		return bad("delay_seconds", "cannot be combined with run_at")
	case !s.RunAt.IsZero() && s.RunAt.Sub(now) > l.MaxDelay:
		return bad("run_at", "is more than %s in the future", l.MaxDelay)
	case s.MaxAttempts < 1 || s.MaxAttempts > l.MaxAttempts:
		return bad("max_attempts", "must be between 1 and %d", l.MaxAttempts)
	case s.Timeout < 0 || s.Timeout > l.MaxTimeout:
		return bad("timeout_seconds", "must be between 0 and %d", int64(l.MaxTimeout/time.Second))
	case len(s.UniqueKey) > 256 || !utf8.ValidString(s.UniqueKey):
		return bad("unique_key", "must be valid UTF-8 of at most 256 bytes")
	case len(s.SingletonKey) > 256 || !utf8.ValidString(s.SingletonKey):
		return bad("singleton_key", "must be valid UTF-8 of at most 256 bytes")
	case len(s.Tags) > l.MaxTags:
		return bad("tags", "has %d tags, more than the limit of %d", len(s.Tags), l.MaxTags)
	case len(s.Metadata) > l.MaxMetadata:
		return bad("metadata", "has %d entries, more than the limit of %d", len(s.Metadata), l.MaxMetadata)
	}
	for i, t := range s.Tags {
		if t == "" || len(t) > 128 || !utf8.ValidString(t) {
			return bad(fmt.Sprintf("tags[%d]", i), "must be valid UTF-8 of 1 to 128 bytes")
		}
	}
	for k, v := range s.Metadata {
		if k == "" || len(k) > 128 || !utf8.ValidString(k) {
			return bad("metadata", "keys must be valid UTF-8 of 1 to 128 bytes")
		}
		if len(v) > 4096 || !utf8.ValidString(v) {
			return bad("metadata."+k, "must be valid UTF-8 of at most 4096 bytes")
		}
	}
	return nil
}
