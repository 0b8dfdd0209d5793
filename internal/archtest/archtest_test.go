package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// listed is a package as `go list -json` prints it.
type listed struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Error      *struct{ Err string }
}

// TestLayering checks the module's real import graph against Rules.
func TestLayering(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list packages: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), goCmd, "list", "-e", "-deps",
		"-json=ImportPath,Standard,Imports,Error", Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}

	var pkgs []Package
	own := 0
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.ImportPath == Module || strings.HasPrefix(p.ImportPath, Module+"/") {
			own++
			if p.Error != nil {
				// A package that cannot be listed cannot be checked.
				t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
			}
		}
		pkgs = append(pkgs, Package{ImportPath: p.ImportPath, Standard: p.Standard, Imports: p.Imports})
	}
	if own == 0 {
		t.Fatalf("go list found no package of %s", Module)
	}
	for _, v := range Check(Module, pkgs, Rules) {
		t.Error(v)
	}
}
