// Package archtest keeps Gantry's import graph layered. Its test lists every
// package of the module with `go list -deps` and checks it against [Rules],
// the layering of the project's style guide expressed as a table; [Check]
// is the rule checker, usable on any package list.
package archtest

import (
	"fmt"
	"slices"
	"strings"
)

// Package is one node of the import graph: what [Check] needs of a package
// listed by `go list -json`.
type Package struct {
	ImportPath string
	// Standard is set for packages of the standard library.
	Standard bool
	// Imports are the packages it imports directly (test files excluded).
	Imports []string
}

// Rule is one constraint on the import graph. Patterns are import paths,
// with three extensions: a trailing "/..." matches the path and every path
// below it; a leading "./" or a lone "." is relative to the module ("." is
// its root package, "./..." all of it); "std" matches every standard
// library package. A rule sets exactly one of Only, Deny and
// ImportedOnlyBy.
type Rule struct {
	// Name says what the rule keeps, in a sentence.
	Name string
	// Packages are the module's packages the rule is about.
	Packages []string
	// Only lists everything the packages may depend on, directly or
	// transitively; packages matched by Packages are always allowed.
	Only []string
	// Deny lists what the packages must not depend on, directly or
	// transitively.
	Deny []string
	// ImportedOnlyBy lists the only packages that may import the packages
	// directly; packages matched by Packages may import each other.
	ImportedOnlyBy []string
}

// Violation is one breach of a [Rule].
type Violation struct {
	// Rule is the name of the rule broken.
	Rule string
	// Package is the package that breaks it: the importer.
	Package string
	// Import is the forbidden dependency.
	Import string
	// Via is the chain of imports from Package to Import, both included;
	// it has two elements for a direct import.
	Via []string
}

// String describes v in one line.
func (v Violation) String() string {
	return fmt.Sprintf("%s: %s imports %s (%s)", v.Rule, v.Package, v.Import, strings.Join(v.Via, " -> "))
}

// graph is a package list indexed for [Check].
type graph struct {
	module string
	pkgs   map[string]*Package
	paths  []string // sorted import paths of every package
}

func newGraph(module string, pkgs []Package) *graph {
	g := &graph{module: module, pkgs: make(map[string]*Package, len(pkgs))}
	for i := range pkgs {
		p := &pkgs[i]
		if _, dup := g.pkgs[p.ImportPath]; !dup {
			g.paths = append(g.paths, p.ImportPath)
		}
		g.pkgs[p.ImportPath] = p
	}
	slices.Sort(g.paths)
	return g
}

// inModule reports whether path is a package of the module.
func (g *graph) inModule(path string) bool {
	return path == g.module || strings.HasPrefix(path, g.module+"/")
}

// standard reports whether path is a standard library package: as listed,
// or, for a package missing from the list, by the go command's rule that
// standard import paths have no dot in their first element.
func (g *graph) standard(path string) bool {
	if p, ok := g.pkgs[path]; ok {
		return p.Standard
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".") && !g.inModule(path)
}

// match reports whether path matches pattern (see [Rule]).
func (g *graph) match(pattern, path string) bool {
	if pattern == "std" {
		return g.standard(path)
	}
	switch {
	case pattern == ".":
		pattern = g.module
	case strings.HasPrefix(pattern, "./"):
		pattern = g.module + "/" + strings.TrimPrefix(pattern, "./")
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func (g *graph) matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if g.match(p, path) {
			return true
		}
	}
	return false
}

// deps returns every package from reaches, directly or transitively, in
// sorted order, each with the shortest chain of imports that leads to it.
func (g *graph) deps(from string) ([]string, map[string][]string) {
	parent := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p, ok := g.pkgs[cur]
		if !ok {
			continue
		}
		imports := slices.Clone(p.Imports)
		slices.Sort(imports)
		for _, imp := range imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	var reached []string
	chains := make(map[string][]string, len(parent))
	for dep := range parent {
		if dep == from {
			continue
		}
		reached = append(reached, dep)
		var chain []string
		for at := dep; at != ""; at = parent[at] {
			chain = append(chain, at)
		}
		slices.Reverse(chain)
		chains[dep] = chain
	}
	slices.Sort(reached)
	return reached, chains
}

// Check returns the violations of rules by pkgs, the packages of module and
// their dependencies, in the order of rules, then by package and import.
// A forbidden dependency reached only through another forbidden one is not
// reported again: the first one on the way is. Transitive dependencies are
// followed through pkgs' Imports, so list dependencies too (go list -deps).
func Check(module string, pkgs []Package, rules []Rule) []Violation {
	g := newGraph(module, pkgs)
	var out []Violation
	for _, r := range rules {
		for _, path := range g.paths {
			if r.ImportedOnlyBy != nil {
				if g.matchAny(r.Packages, path) || g.matchAny(r.ImportedOnlyBy, path) {
					continue
				}
				imports := slices.Clone(g.pkgs[path].Imports)
				slices.Sort(imports)
				for _, imp := range imports {
					if g.matchAny(r.Packages, imp) {
						out = append(out, Violation{Rule: r.Name, Package: path, Import: imp, Via: []string{path, imp}})
					}
				}
				continue
			}
			if !g.inModule(path) || !g.matchAny(r.Packages, path) {
				continue
			}
			reached, chains := g.deps(path)
			bad := func(dep string) bool {
				if r.Only != nil {
					return !g.matchAny(r.Only, dep) && !g.matchAny(r.Packages, dep)
				}
				return g.matchAny(r.Deny, dep)
			}
		next:
			for _, dep := range reached {
				if !bad(dep) {
					continue
				}
				chain := chains[dep]
				for _, mid := range chain[1 : len(chain)-1] {
					if bad(mid) {
						// Reported as a dependency of mid, its cause.
						continue next
					}
				}
				out = append(out, Violation{Rule: r.Name, Package: path, Import: dep, Via: chain})
			}
		}
	}
	return out
}
