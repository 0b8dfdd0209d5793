// Package wire holds the JSON shapes of Gantry's HTTP API v1 (see
// docs/api.md): request bodies with their decoding and validation, and the
// objects the server answers with. Both halves use it: the server to
// translate HTTP to engine calls, the SDK and workers to speak the protocol.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/job"
)

// TimeFormat is how the API writes times: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Time is a time in the API's format. The zero Time is written as null.
type Time struct{ time.Time }

var timeType = reflect.TypeFor[Time]()

// T returns t as a *Time, or nil for the zero time.
func T(t time.Time) *Time {
	if t.IsZero() {
		return nil
	}
	return &Time{t.UTC()}
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(TimeFormat) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler: it accepts RFC 3339 with any
// precision and offset.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	// A *json.UnmarshalTypeError gets the field's name from the decoder,
	// so that the error names it (see decodeError).
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "a non-string", Type: timeType}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%q", s), Type: timeType}
	}
	t.Time = v.UTC()
	return nil
}

// Seconds converts a *_seconds field to a duration (nil: zero). Values
// beyond what a duration holds (about 292 years) saturate, so that range
// checks on the result see them as huge, never as wrapped around.
func Seconds(f *float64) time.Duration {
	if f == nil {
		return 0
	}
	ns := *f * float64(time.Second)
	switch {
	case ns >= math.MaxInt64:
		return math.MaxInt64
	case ns <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(ns)
}

// S converts a duration to a *_seconds value.
func S(d time.Duration) float64 { return d.Seconds() }

// MaxDepth bounds the nesting of JSON values in requests.
const MaxDepth = 64

// Decode reads one JSON value from r into v, strictly: unknown fields,
// trailing data, nesting deeper than [MaxDepth] and type mismatches are
// errors naming the field, as *[job.FieldError] (field "body" when the
// body as a whole is at fault).
func Decode(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return &job.FieldError{Field: "body", Problem: err.Error()}
	}
	return DecodeBytes(data, v)
}

// DecodeBytes is [Decode] on a byte slice.
func DecodeBytes(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &job.FieldError{Field: "body", Problem: "is empty: a JSON object is required"}
	}
	if err := checkDepth(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return &job.FieldError{Field: "body", Problem: "has data after the JSON value"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &job.FieldError{Field: "body", Problem: "has data after the JSON value"}
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &job.FieldError{Field: "body", Problem: fmt.Sprintf("is not valid JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		if typ.Type == timeType {
			return &job.FieldError{Field: field, Problem: "must be an RFC 3339 time string, not " + typ.Value}
		}
		return &job.FieldError{Field: field, Problem: fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return &job.FieldError{Field: "body", Problem: "is truncated JSON"}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if name := strings.Trim(f, `"`); name != "" {
			return &job.FieldError{Field: name, Problem: "is not a known field"}
		}
		return &job.FieldError{Field: "body", Problem: "has a member with an empty name"}
	}
	// Errors from a field's own UnmarshalJSON (e.g. Time) carry no field
	// name in encoding/json; report the message.
	return &job.FieldError{Field: "body", Problem: strings.TrimPrefix(msg, "json: ")}
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "float64", "float32", "uint", "uint64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return k
}

// checkDepth rejects JSON nested deeper than MaxDepth without decoding it.
func checkDepth(data []byte) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxDepth {
				return &job.FieldError{Field: "body", Problem: fmt.Sprintf("is nested deeper than %d levels", MaxDepth)}
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
