package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/internal/webhook"
)

type apiWebhook struct {
	ID        string   `json:"id"`
	Tenant    string   `json:"tenant"`
	URL       string   `json:"url"`
	Kinds     []string `json:"kinds"`
	BatchID   string   `json:"batch_id"`
	Secret    *string  `json:"secret"`
	CreatedAt string   `json:"created_at"`
}

// apiDelivery is a webhook delivery as a receiver got it.
type apiDelivery struct {
	Header http.Header
	Body   []byte
}

func TestAPIWebhooks(t *testing.T) {
	var (
		mu  sync.Mutex
		got []apiDelivery
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, apiDelivery{Header: r.Header.Clone(), Body: body})
		mu.Unlock()
	}))
	defer recv.Close()
	s := apiStart(t, server.Config{Webhooks: webhook.Options{AllowPrivate: true}})

	var wh apiWebhook
	r := s.req("POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/hook", "kinds": []string{"job.submitted"}})
	r.want(t, http.StatusCreated, &wh)
	if wh.ID == "" || wh.Secret == nil || *wh.Secret == "" || wh.URL != recv.URL+"/hook" || strings.Join(wh.Kinds, ",") != "job.submitted" || wh.CreatedAt == "" {
		t.Fatalf("created webhook = %+v", wh)
	}
	if r.Header.Get("Location") != "/v1/webhooks/"+wh.ID {
		t.Errorf("Location = %q", r.Header.Get("Location"))
	}
	secret := *wh.Secret

	// The secret is shown only once.
	var one apiWebhook
	s.req("GET", "/v1/webhooks/"+wh.ID, nil).want(t, http.StatusOK, &one)
	if one.ID != wh.ID || one.Secret != nil {
		t.Errorf("GET webhook = %+v, want it without its secret", one)
	}
	var list apiPage[apiWebhook]
	s.req("GET", "/v1/webhooks", nil).want(t, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != wh.ID || list.Items[0].Secret != nil || list.NextCursor != nil {
		t.Errorf("webhook list = %+v", list)
	}

	// A delivery is signed with the secret.
	j := s.submit(map[string]any{"type": "x"})
	var d apiDelivery
	apiEventually(t, "a delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return false
		}
		d = got[0]
		return true
	})
	var ev struct {
		Kind  string `json:"kind"`
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(d.Body, &ev); err != nil || ev.Kind != "job.submitted" || ev.JobID != j.ID {
		t.Errorf("delivery body %s (%v), want job.submitted of %s", d.Body, err, j.ID)
	}
	sig := d.Header.Get("Gantry-Signature")
	ts, v1, _ := strings.Cut(sig, ",")
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strings.TrimPrefix(ts, "t=") + "." + string(d.Body)))
	if want := "v1=" + hex.EncodeToString(m.Sum(nil)); !strings.HasPrefix(ts, "t=") || v1 != want {
		t.Errorf("Gantry-Signature = %q, want t=<unix>,%s", sig, want)
	}

	// Bad input names the field (400, whether the body cannot be decoded or
	// a value is not acceptable); unknown ids are 404.
	for _, tt := range []struct {
		body   any
		status int
		field  string
	}{
		{map[string]any{"url": "ftp://example.com/x"}, http.StatusBadRequest, "url"},
		{map[string]any{"url": "https://example.com/x", "kinds": []string{"job.nope"}}, http.StatusBadRequest, "kinds[0]"},
		{map[string]any{"url": "https://example.com/x", "batch_id": "b"}, http.StatusBadRequest, "batch_id"},
		{map[string]any{"url": "https://example.com/x", "secret": "mine"}, http.StatusBadRequest, "secret"},
		{map[string]any{"url": "https://example.com/x", "kinds": "job.failed"}, http.StatusBadRequest, "kinds"},
		{map[string]any{"kinds": []string{"job.failed"}}, http.StatusBadRequest, "url"},
	} {
		s.req("POST", "/v1/webhooks", tt.body).problem(t, tt.status, tt.field)
	}
	s.req("GET", "/v1/webhooks/01900000-0000-7000-8000-000000000000", nil).problem(t, http.StatusNotFound, "")
	s.req("GET", "/v1/webhooks/x", nil).problem(t, http.StatusNotFound, "")

	s.req("DELETE", "/v1/webhooks/"+wh.ID, nil).want(t, http.StatusNoContent, nil)
	s.req("GET", "/v1/webhooks/"+wh.ID, nil).problem(t, http.StatusNotFound, "")
	s.req("DELETE", "/v1/webhooks/"+wh.ID, nil).problem(t, http.StatusNotFound, "")
}

func TestAPIWebhookLimits(t *testing.T) {
	s := apiStart(t, server.Config{Webhooks: webhook.Options{MaxWebhooks: 1}})
	// Internal targets are refused unless the server allows them.
	s.req("POST", "/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/hook"}).problem(t, http.StatusBadRequest, "url")
	// A tenant over its webhook quota gets 422.
	s.req("POST", "/v1/webhooks", map[string]any{"url": "https://example.com/a"}).want(t, http.StatusCreated, nil)
	s.req("POST", "/v1/webhooks", map[string]any{"url": "https://example.com/b"}).problem(t, http.StatusUnprocessableEntity, "")
}
