package job

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestSpecValidate(t *testing.T) {
	long := strings.Repeat("x", 129)
	for _, tc := range []struct {
		name  string
		spec  Spec
		field string // "" for valid
	}{
		{"minimal", Spec{Type: "email.send"}, ""},
		{"everything", Spec{Type: "a:b-c_d.e", Name: "n", Queue: "q", Priority: 100, Params: json.RawMessage(`{"a":1}`),
			Package: "pkg@sha256:" + strings.Repeat("a", 64), MaxAttempts: 3, Timeout: time.Minute, UniqueKey: "u",
			SingletonKey: "s", Tags: []string{"t"}, Metadata: map[string]string{"k": "v"}, RunAt: now.Add(time.Hour)}, ""},
		{"no type", Spec{}, "type"},
		{"bad type", Spec{Type: "a b"}, "type"},
		{"long type", Spec{Type: long}, "type"},
		{"bad queue", Spec{Type: "t", Queue: "a/b"}, "queue"},
		{"bad tenant", Spec{Type: "t", Tenant: "a b"}, "tenant"},
		{"priority high", Spec{Type: "t", Priority: 101}, "priority"},
		{"priority low", Spec{Type: "t", Priority: -101}, "priority"},
		{"params not json", Spec{Type: "t", Params: json.RawMessage(`{`)}, "params"},
		{"params too large", Spec{Type: "t", Params: json.RawMessage(`"` + strings.Repeat("x", 300<<10) + `"`)}, "params"},
		{"bad package", Spec{Type: "t", Package: "p@sha256:zz"}, "package"},
		{"attempts", Spec{Type: "t", MaxAttempts: 1001}, "max_attempts"},
		{"timeout", Spec{Type: "t", Timeout: 8 * 24 * time.Hour}, "timeout_seconds"},
		{"far run_at", Spec{Type: "t", RunAt: now.Add(400 * 24 * time.Hour)}, "run_at"},
		{"empty tag", Spec{Type: "t", Tags: []string{"a", ""}}, "tags[1]"},
		{"bad utf8 name", Spec{Type: "t", Name: "\xff"}, "name"},
		{"long metadata value", Spec{Type: "t", Metadata: map[string]string{"k": strings.Repeat("v", 5000)}}, "metadata.k"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			s.Normalize(now)
			err := s.Validate(now, Limits{})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate() = %v, want a FieldError for %q", err, tc.field)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	s := Spec{Type: "t", Delay: time.Minute}
	s.Normalize(now)
	if s.Tenant != DefaultTenant || s.Queue != DefaultQueue || s.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("Normalize defaults = %q %q %d", s.Tenant, s.Queue, s.MaxAttempts)
	}
	if !s.RunAt.Equal(now.Add(time.Minute)) || s.Delay != 0 {
		t.Errorf("Normalize(delay 1m) RunAt = %v, Delay = %v; want %v, 0", s.RunAt, s.Delay, now.Add(time.Minute))
	}
	j := NewFromSpec(&s, NewID(now), now)
	if j.State != "scheduled" {
		t.Errorf("NewFromSpec of a delayed spec: state %q, want scheduled", j.State)
	}
}

func TestNewIDOrdered(t *testing.T) {
	prev := ""
	for i := range 10000 {
		at := now.Add(time.Duration(i/100) * time.Millisecond)
		id := NewID(at)
		if !ValidID(id) {
			t.Fatalf("NewID() = %q, not a valid UUID", id)
		}
		if id[14] != '7' {
			t.Fatalf("NewID() = %q, want version 7", id)
		}
		if id <= prev {
			t.Fatalf("NewID() = %q after %q: not increasing", id, prev)
		}
		prev = id
	}
	if ValidID("not-a-uuid") || ValidID("") {
		t.Error("ValidID accepted garbage")
	}
}
