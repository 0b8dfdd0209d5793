package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// startServerCommand runs 'gantry server' in the background on a free
// port and returns it with its URL, once it listens.
func startServerCommand(t *testing.T, args ...string) (*background, string) {
	t.Helper()
	srv := start(t, append([]string{"server", "--addr", "127.0.0.1:0", "--log-level", "error"}, args...)...)
	srv.out.waitFor(t, "Press Ctrl-C to stop.\n", srv.done)
	m := regexp.MustCompile(`(?m)^Gantry server listening on (http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(srv.out.String())
	if m == nil {
		t.Fatalf("no URL in the output of gantry server:\n%s", srv.out)
	}
	return srv, m[1]
}

func TestServerCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, url := startServerCommand(t, "--data-dir", dir)

	// The first start generates the admin token, prints it and saves it
	// (mode 0600) where clients find it.
	tokenFile := filepath.Join(dir, "admin.token")
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if fi, err := os.Stat(tokenFile); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Errorf("token file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	want := "Admin token: " + token + "\n  (generated; saved in " + tokenFile + ")\n"
	if out := srv.out.String(); !strings.Contains(out, want) || !strings.Contains(out, "Data directory: "+dir+"\n") {
		t.Errorf("the output does not show the generated token (%q):\n%s", want, out)
	}

	r := run(t.Context(), "--server", url, "--token-file", tokenFile, "submit", "demo.noop")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Job ") {
		t.Errorf("submit against gantry server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A command that fails while the server runs.
	watch := start(t, "--server", url, "--token-file", tokenFile, "watch", "--batch", unknownID)
	if code := watch.wait(t); code != 1 || !strings.Contains(watch.errOut.String(), "not found") {
		t.Errorf("watch of an unknown batch: exit %d, stderr %q", code, watch.errOut)
	}

	if code := srv.stop(); code != 0 {
		t.Fatalf("gantry server stopped by a signal exited %d, want 0\n%s", code, srv.errOut)
	}
	if out := srv.out.String(); !strings.HasSuffix(out, "Shutting down (up to 30s; Ctrl-C again to exit at once)...\nStopped.\n") {
		t.Errorf("the output does not end with the shutdown:\n%s", out)
	}

	// The next start keeps the token and the jobs.
	srv, url = startServerCommand(t, "--data-dir", dir)
	if out := srv.out.String(); !strings.Contains(out, "Admin token: in "+tokenFile+"\n") || strings.Contains(out, token) {
		t.Errorf("the second start's output should say where the token is, not show it:\n%s", out)
	}
	r = run(t.Context(), "--server", url, "--token", token, "jobs", "list", "--json")
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Items) != 1 {
		t.Errorf("jobs list after a restart: exit %d, %d jobs\n%s%s; want the one job", r.code, len(page.Items), r.stdout, r.stderr)
	}
	srv.stop()
}

func TestServerCommandAdminTokenFromEnvironment(t *testing.T) {
	t.Setenv(EnvAdminToken, "a-token-from-the-environment-0123456789")
	dir := t.TempDir()
	srv, url := startServerCommand(t, "--data-dir", dir)
	if out := srv.out.String(); !strings.Contains(out, "Admin token: from $GANTRY_ADMIN_TOKEN\n") {
		t.Errorf("the output does not say the token comes from the environment:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); !os.IsNotExist(err) {
		t.Errorf("a token file was written although the token came from the environment: %v", err)
	}
	if r := run(t.Context(), "--server", url, "--token", "a-token-from-the-environment-0123456789", "queues", "list"); r.code != 0 {
		t.Errorf("queues list with the environment's token: exit %d\n%s", r.code, r.stderr)
	}
	srv.stop()
}

func TestBuildParams(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(file, []byte(`{"from": "file"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		base    string
		entries []string
		want    string // "" for no params
		err     string
	}{
		{},
		{base: `[1, 2]`, want: `[1, 2]`},
		{base: `"text"`, want: `"text"`},
		{base: "@" + file, want: `{"from": "file"}`},
		{entries: []string{"a=b"}, want: `{"a":"b"}`},
		{entries: []string{"n:=5", "s=5", "list:=[1,true]", "eq=a=b", "empty="}, want: `{"empty":"","eq":"a=b","list":[1,true],"n":5,"s":"5"}`},
		{base: `{"a": 1, "b": 2}`, entries: []string{"b=x"}, want: `{"a":1,"b":"x"}`},
		{base: `{"a":`, err: "--params is not valid JSON"},
		{base: "@" + file + ".missing", err: "no such file"},
		{base: `[1]`, entries: []string{"a=b"}, err: "--params must be a JSON object to be combined with --param"},
		{base: `null`, entries: []string{"a=b"}, err: "--params must be a JSON object"},
		{entries: []string{"=b"}, err: `--param "=b" is not key=value or key:=JSON`},
		{entries: []string{":=1"}, err: `--param ":=1" has no key`},
		{entries: []string{"n:=five"}, err: `--param n:= takes JSON; "five" is not (write n=five for a string)`},
	}
	for _, tt := range tests {
		got, err := buildParams(tt.base, tt.entries)
		if tt.err != "" {
			var u *usageError
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, &u) {
				t.Errorf("buildParams(%q, %q) = %s, %v; want a usage error containing %q", tt.base, tt.entries, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("buildParams(%q, %q) = %v", tt.base, tt.entries, err)
			continue
		}
		if diff := cmp.Diff(tt.want, string(got)); diff != "" {
			t.Errorf("buildParams(%q, %q) (-want +got):\n%s", tt.base, tt.entries, diff)
		}
	}
}
