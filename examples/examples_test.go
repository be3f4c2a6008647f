package examples

// This test loads every example configuration so none rots.

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/examples/standin"
)

func TestEveryExampleLoads(t *testing.T) {
	files, err := filepath.Glob("*.toml")
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	ca, err := standin.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			// The examples name certificates under tls/, relative to the file.
			for _, name := range []string{"login.example.com", "manage.example.com"} {
				if _, _, err := ca.Issue(filepath.Join(dir, "tls"), 90*24*time.Hour, name); err != nil {
					t.Fatal(err)
				}
			}
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, f)
			if err := os.WriteFile(path, body, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("%s does not load:\n%v", f, err)
			}
			if len(cfg.Listeners) == 0 {
				t.Fatalf("%s has no listener", f)
			}
		})
	}
}
