package archtest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const mod = "example.com/m"

// pkg returns a module package importing imports ("." and "./x" relative to
// the module, others as they are).
func pkg(path string, imports ...string) Package {
	abs := func(p string) string {
		switch {
		case p == ".":
			return mod
		case len(p) > 2 && p[:2] == "./":
			return mod + "/" + p[2:]
		}
		return p
	}
	for i := range imports {
		imports[i] = abs(imports[i])
	}
	return Package{ImportPath: abs(path), Imports: imports}
}

func std(path string, imports ...string) Package {
	return Package{ImportPath: path, Standard: true, Imports: imports}
}

func TestCheck(t *testing.T) {
	only := Rule{Name: "core is stdlib only", Packages: []string{"./core/..."}, Only: []string{"std"}}
	deny := Rule{Name: "engine has no http", Packages: []string{"./engine"}, Deny: []string{"net/http/...", "./db/..."}}
	importers := Rule{Name: "only roots import db", Packages: []string{"./db/..."}, ImportedOnlyBy: []string{"./cmd/..."}}
	stdlib := []Package{std("fmt", "io"), std("io"), std("net/http", "fmt", "net/http/internal"), std("net/http/internal", "io")}

	tests := []struct {
		name  string
		rules []Rule
		pkgs  []Package
		want  []Violation
	}{
		{
			name:  "only: standard library and own subpackages pass",
			rules: []Rule{only},
			pkgs:  []Package{pkg("./core", "fmt", "./core/sub"), pkg("./core/sub", "io")},
		},
		{
			name:  "only: a third-party import is reported once, not its dependencies",
			rules: []Rule{only},
			pkgs: []Package{
				pkg("./core", "fmt", "./core/sub"), pkg("./core/sub", "example.org/lib"),
				{ImportPath: "example.org/lib", Imports: []string{"example.org/lib/inner", "fmt"}},
				{ImportPath: "example.org/lib/inner"},
			},
			want: []Violation{
				{Rule: only.Name, Package: mod + "/core", Import: "example.org/lib", Via: []string{mod + "/core", mod + "/core/sub", "example.org/lib"}},
				{Rule: only.Name, Package: mod + "/core/sub", Import: "example.org/lib", Via: []string{mod + "/core/sub", "example.org/lib"}},
			},
		},
		{
			name:  "only: another package of the module is not allowed",
			rules: []Rule{only},
			pkgs:  []Package{pkg("./core", "./engine"), pkg("./engine")},
			want:  []Violation{{Rule: only.Name, Package: mod + "/core", Import: mod + "/engine", Via: []string{mod + "/core", mod + "/engine"}}},
		},
		{
			name:  "deny: a transitive import is reported with its chain",
			rules: []Rule{deny},
			pkgs:  []Package{pkg("./engine", "./event"), pkg("./event", "net/http")},
			want: []Violation{
				{Rule: deny.Name, Package: mod + "/engine", Import: "net/http", Via: []string{mod + "/engine", mod + "/event", "net/http"}},
			},
		},
		{
			name:  "deny: subpackages of a denied pattern count, once",
			rules: []Rule{deny},
			pkgs:  []Package{pkg("./engine", "net/http/internal", "./db/sqlite"), pkg("./db/sqlite")},
			want: []Violation{
				{Rule: deny.Name, Package: mod + "/engine", Import: mod + "/db/sqlite", Via: []string{mod + "/engine", mod + "/db/sqlite"}},
				{Rule: deny.Name, Package: mod + "/engine", Import: "net/http/internal", Via: []string{mod + "/engine", "net/http/internal"}},
			},
		},
		{
			name:  "deny: the rule is about the listed packages only",
			rules: []Rule{deny},
			pkgs:  []Package{pkg("./engine", "fmt"), pkg("./engine/sub", "net/http"), pkg("./server", "net/http", "./engine")},
		},
		{
			name:  "importers: roots, tests and the package's own subpackages may import it",
			rules: []Rule{importers},
			pkgs:  []Package{pkg("./cmd/app", "./db"), pkg("./db", "./db/internal"), pkg("./db/internal")},
		},
		{
			name:  "importers: any other importer is reported",
			rules: []Rule{importers},
			pkgs:  []Package{pkg("./cmd/app", "./engine"), pkg("./engine", "./db/internal", "fmt"), pkg("./db/internal")},
			want:  []Violation{{Rule: importers.Name, Package: mod + "/engine", Import: mod + "/db/internal", Via: []string{mod + "/engine", mod + "/db/internal"}}},
		},
		{
			name:  "violations come in rule order",
			rules: []Rule{importers, deny},
			pkgs:  []Package{pkg("./engine", "./db", "net/http"), pkg("./db")},
			want: []Violation{
				{Rule: importers.Name, Package: mod + "/engine", Import: mod + "/db", Via: []string{mod + "/engine", mod + "/db"}},
				{Rule: deny.Name, Package: mod + "/engine", Import: mod + "/db", Via: []string{mod + "/engine", mod + "/db"}},
				{Rule: deny.Name, Package: mod + "/engine", Import: "net/http", Via: []string{mod + "/engine", "net/http"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(mod, append(tt.pkgs, stdlib...), tt.rules)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRulesCatch shows that the real Rules report the layering breaches
// they exist for, on synthetic graphs of this module.
func TestRulesCatch(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	tests := []struct {
		name string
		pkgs []Package
		want []string // rules broken
	}{
		{
			name: "a layered graph passes",
			pkgs: []Package{
				{ImportPath: Module, Imports: []string{"context"}},
				{ImportPath: m("internal/job"), Imports: []string{Module, "github.com/google/uuid"}},
				{ImportPath: "github.com/google/uuid", Imports: []string{"crypto/rand", "database/sql/driver"}},
				{ImportPath: m("internal/store"), Imports: []string{m("internal/job")}},
				{ImportPath: m("internal/store/sqlite"), Imports: []string{m("internal/store"), "database/sql"}},
				{ImportPath: m("internal/engine"), Imports: []string{m("internal/store"), m("internal/event")}},
				{ImportPath: m("internal/event"), Imports: []string{m("internal/store")}},
				{ImportPath: m("worker"), Imports: []string{Module}},
				{ImportPath: m("embedded"), Imports: []string{m("internal/engine"), m("internal/store/sqlite"), m("worker")}},
				{ImportPath: m("internal/cli"), Imports: []string{m("embedded"), "github.com/spf13/cobra"}},
				{ImportPath: m("cmd/gantry"), Imports: []string{m("internal/cli")}},
				{ImportPath: "github.com/spf13/cobra"},
			},
		},
		{
			name: "the root package imports a third-party package",
			pkgs: []Package{{ImportPath: Module, Imports: []string{"github.com/google/uuid"}}, {ImportPath: "github.com/google/uuid"}},
			want: []string{"the root package imports only the standard library"},
		},
		{
			name: "internal/job imports the store",
			pkgs: []Package{{ImportPath: m("internal/job"), Imports: []string{m("internal/store")}}, {ImportPath: m("internal/store")}},
			want: []string{"internal/job imports only the standard library, uuid and the root package"},
		},
		{
			name: "the store seam imports net/http",
			pkgs: []Package{{ImportPath: m("internal/store"), Imports: []string{"net/http"}}},
			want: []string{"the store seam and its conformance suite know no store engine and no HTTP"},
		},
		{
			name: "the engine imports the SQLite store",
			pkgs: []Package{{ImportPath: m("internal/engine"), Imports: []string{m("internal/store/sqlite")}}, {ImportPath: m("internal/store/sqlite")}},
			want: []string{"only composition roots import the store engines", "the engine knows no HTTP, no SQL and no store engine"},
		},
		{
			name: "the engine imports database/sql through a helper",
			pkgs: []Package{{ImportPath: m("internal/engine"), Imports: []string{m("internal/sqlutil")}}, {ImportPath: m("internal/sqlutil"), Imports: []string{"database/sql"}}},
			want: []string{"the engine knows no HTTP, no SQL and no store engine"},
		},
		{
			name: "the worker imports the engine",
			pkgs: []Package{{ImportPath: m("worker"), Imports: []string{m("internal/engine")}}, {ImportPath: m("internal/engine")}},
			want: []string{"the worker half never imports the server half"},
		},
		{
			name: "the client imports embedded",
			pkgs: []Package{{ImportPath: m("client"), Imports: []string{m("embedded")}}, {ImportPath: m("embedded")}},
			want: []string{"the worker half never imports the server half"},
		},
		{
			name: "the server imports internal/cli",
			pkgs: []Package{{ImportPath: m("internal/server"), Imports: []string{m("internal/cli")}}, {ImportPath: m("internal/cli")}},
			want: []string{"only cmd/gantry imports internal/cli"},
		},
		{
			name: "embedded imports cobra",
			pkgs: []Package{{ImportPath: m("embedded"), Imports: []string{"github.com/spf13/cobra"}}, {ImportPath: "github.com/spf13/cobra"}},
			want: []string{"the library packages stay free of the CLI's dependencies"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range Check(Module, tt.pkgs, Rules) {
				got = append(got, v.Rule)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rules broken mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
