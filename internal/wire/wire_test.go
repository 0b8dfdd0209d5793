package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
)

func TestDecodeErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		body  string
		field string
	}{
		{``, "body"},
		{`{`, "body"},
		{`{"type": 1}`, "type"},
		{`{"type": "t", "priority": "high"}`, "priority"},
		{`{"type": "t", "colour": "red"}`, "colour"},
		{`{"type": "t"} {}`, "body"},
		{`{"type": "t", "run_at": "tomorrow"}`, "run_at"},
		{`{"type": "t", "tags": "a"}`, "tags"},
		{`{"type": "t", "params": ` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, "body"},
	} {
		var r JobRequest
		err := DecodeBytes([]byte(tc.body), &r)
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("DecodeBytes(%.40q) = %v, want a FieldError for %q", tc.body, err, tc.field)
		}
	}
}

func TestJobRequestSpec(t *testing.T) {
	var r JobRequest
	if err := DecodeBytes([]byte(`{"type":"t","delay_seconds":1.5,"timeout_seconds":60,"params":{"a":1}}`), &r); err != nil {
		t.Fatal(err)
	}
	s, err := r.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if s.Delay != 1500*time.Millisecond || s.Timeout != time.Minute || string(s.Params) != `{"a":1}` {
		t.Errorf("Spec() = delay %v timeout %v params %s", s.Delay, s.Timeout, s.Params)
	}
	for _, body := range []string{
		`{"type":"t","delay_seconds":-1}`,
		`{"type":"t","timeout_seconds":-1}`,
		`{"type":"t","delay_seconds":1,"run_at":"2026-01-01T00:00:00Z"}`,
	} {
		var r JobRequest
		if err := DecodeBytes([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Spec(); err == nil {
			t.Errorf("Spec(%s) succeeded, want a FieldError", body)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	tm := Time{time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.FixedZone("x", 3600))}
	b, err := json.Marshal(tm)
	if err != nil || string(b) != `"2026-11-23T09:00:00.123Z"` {
		t.Errorf("Marshal = %s, %v; want \"2026-11-23T09:00:00.123Z\"", b, err)
	}
	var back Time
	if err := json.Unmarshal([]byte(`"2026-11-23T10:00:00+01:00"`), &back); err != nil || !back.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("Unmarshal = %v, %v", back, err)
	}
	if T(time.Time{}) != nil {
		t.Error("T(zero) is not nil")
	}
}

func TestSpecsNameTheIndex(t *testing.T) {
	_, err := Specs([]JobRequest{{Type: "a"}, {Type: "b", DelaySeconds: new(float64(-1))}})
	var fe *job.FieldError
	if !errors.As(err, &fe) || fe.Field != "jobs[1].delay_seconds" {
		t.Errorf("Specs() = %v, want a FieldError for jobs[1].delay_seconds", err)
	}
}

// FuzzDecode checks that no input makes the decoder panic and that every
// rejection names a field.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"type":"t"}`, `{"jobs":[{"type":"t"}]}`, `{"":0}`, `[`, `{"run_at":"x"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{new(JobRequest), new(BatchRequest), new(ReportRequest), new(HeartbeatRequest), new(LeaseRequest)} {
			err := DecodeBytes(data, v)
			var fe *job.FieldError
			if err != nil && (!errors.As(err, &fe) || fe.Field == "") {
				t.Fatalf("DecodeBytes(%q) = %v: not a FieldError naming a field", data, err)
			}
		}
	})
}

func TestDecodeJob(t *testing.T) {
	for _, tc := range []struct {
		body  string
		field string // "" for no error
	}{
		{`{"type":"t"}`, ""},
		{`{"queue":"q"}`, "type"},
		{`{"type":""}`, "type"},
		{`null`, "type"},
		{`{"type":"t","foo":1}`, "foo"},
		{`{"type":"t","priority":"x"}`, "priority"},
		{`"t"`, "body"},
	} {
		var r JobRequest
		err := DecodeJob([]byte(tc.body), &r)
		var fe *job.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("DecodeJob(%s) = %v, want nil", tc.body, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("DecodeJob(%s) = %v, want a FieldError for %q", tc.body, err, tc.field)
		}
	}
}

// TestJobUnsetStringsPresent checks that the job object always has its
// string members, "" when unset.
func TestJobUnsetStringsPresent(t *testing.T) {
	b, err := json.Marshal(FromJob(&job.Job{ID: "j", Type: "t"}, false))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "package", "batch_id", "unique_key", "singleton_key", "error", "worker_id"} {
		if string(m[k]) != `""` {
			t.Errorf("member %q = %s, want \"\" in %s", k, m[k], b)
		}
	}
}
