package archtest

// Module is the import path of Gantry's module.
const Module = "github.com/gantryhq/gantry"

// compositionRoots are the packages that wire concrete adapters (the store
// engines) to the engine. Tests may import the engines too: Check sees
// only non-test imports.
var compositionRoots = []string{"./embedded/...", "./internal/server/...", "./internal/cli/...", "./cmd/...", "./bench/..."}

// concreteStores are the store engines behind the seam.
var concreteStores = []string{"./internal/store/sqlite/...", "./internal/store/postgres/..."}

// serverHalf is what workers must not know of: they talk to Gantry only
// through worker.Transport (the HTTP contract, or embedded's local one).
var serverHalf = []string{
	"./internal/engine/...", "./internal/store/...", "./internal/event/...",
	"./internal/api/...", "./internal/ui/...", "./internal/server/...", "./embedded/...",
}

// Rules is the layering of Gantry's packages (docs/architecture.md):
// imports point down the layers and adapters plug in only at the
// composition roots.
var Rules = []Rule{
	{
		Name:     "the root package imports only the standard library",
		Packages: []string{"."},
		Only:     []string{"std"},
	},
	{
		Name:     "internal/job imports only the standard library, uuid and the root package",
		Packages: []string{"./internal/job/..."},
		Only:     []string{"std", "github.com/google/uuid/...", "."},
	},
	{
		Name:     "layer-0 packages import only the standard library",
		Packages: []string{"./internal/pkgfmt/...", "./internal/config/...", "./internal/migrate/..."},
		Only:     []string{"std"},
	},
	{
		Name:     "internal/cron imports only the standard library and robfig/cron",
		Packages: []string{"./internal/cron/..."},
		Only:     []string{"std", "github.com/robfig/cron/..."},
	},
	{
		Name:     "the store seam and its conformance suite know no store engine and no HTTP",
		Packages: []string{"./internal/store", "./internal/store/storetest/..."},
		Deny:     append([]string{"net/http/...", "./internal/engine/...", "./internal/api/...", "./internal/server/..."}, concreteStores...),
	},
	{
		Name:           "only composition roots import the store engines",
		Packages:       concreteStores,
		ImportedOnlyBy: compositionRoots,
	},
	{
		Name:     "the engine knows no HTTP, no SQL and no store engine",
		Packages: []string{"./internal/engine/...", "./internal/event/..."},
		// database/sql itself, not database/sql/driver: github.com/google/uuid
		// implements driver.Valuer.
		Deny: append([]string{
			"net/http/...", "database/sql", "modernc.org/sqlite/...", "github.com/jackc/...", "github.com/lib/pq/...",
			"./internal/api/...", "./internal/server/...", "./embedded/...",
		}, concreteStores...),
	},
	{
		Name:     "the worker half never imports the server half",
		Packages: []string{"./worker/...", "./client/...", "./internal/runner/...", "./internal/pkgfmt/...", "./internal/wire/..."},
		Deny:     serverHalf,
	},
	{
		Name:           "only cmd/gantry imports internal/cli",
		Packages:       []string{"./internal/cli/..."},
		ImportedOnlyBy: []string{"./cmd/gantry"},
	},
	{
		Name:     "the library packages stay free of the CLI's dependencies",
		Packages: []string{".", "./worker/...", "./client/...", "./embedded/..."},
		Deny:     []string{"github.com/spf13/...", "./internal/cli/...", "./cmd/..."},
	},
}
