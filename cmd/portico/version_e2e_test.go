package main

import (
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionNamesTheBuild: the binary built for these tests prints what
// Go embedded in it (read back from the file, as `go version -m` does):
// its module version, the commit and the Go release. Whether a commit is
// there depends on the build (a clean clone has one; a git worktree or
// GOFLAGS=-buildvcs=false has none), so a fresh clone of this commit is
// built too and must name it, unmodified.
func TestVersionNamesTheBuild(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, bin string) (string, *debug.BuildInfo) {
		out, err := exec.Command(bin, "-version").Output()
		if err != nil {
			t.Fatalf("portico -version: %v", err)
		}
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSpace(string(out))
		if want := versionLine(bi); line != want {
			t.Errorf("-version printed %q, want %q", line, want)
		}
		if !strings.HasSuffix(line, "; "+runtime.Version()+")") {
			t.Errorf("-version printed %q, want the Go release %s", line, runtime.Version())
		}
		return line, bi
	}
	line, _ := check(t, binary)
	t.Logf("test binary: %s", line)

	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git: the clone's build is not checked")
	}
	top, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): the clone's build is not checked", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if out, err := exec.Command(git, "clone", "-q", "--no-hardlinks", strings.TrimSpace(string(top)), src).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	rev, err := exec.Command(git, "-C", src, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "portico")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/portico")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in a clone: %v\n%s", err, out)
	}
	line, bi := check(t, bin)
	want := "revision " + strings.TrimSpace(string(rev)) + ", "
	if !strings.Contains(line, want) || strings.Contains(line, "modified") {
		t.Errorf("clean clone: -version printed %q, want %q and no modification", line, want)
	}
	if !strings.Contains(bi.Main.Version, strings.TrimSpace(string(rev))[:12]) {
		t.Errorf("clean clone: version %q does not name the commit", bi.Main.Version)
	}
}

// TestVersionLine pins the format, with and without VCS information.
func TestVersionLine(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202172300-8a71d66e1f2a+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "8a71d66e1f2a0123456789abcdef0123456789ab"},
			{Key: "vcs.time", Value: "2026-12-02T17:23:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "portico v0.0.0-20261202172300-8a71d66e1f2a+dirty (revision 8a71d66e1f2a0123456789abcdef0123456789ab, 2026-12-02T17:23:00Z, modified; go1.26.8)"
	if got := versionLine(bi); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	if got, want := versionLine(bare), "portico devel (no VCS information; go1.26.8)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
