package config

import (
	"os"
	"strings"
)

// admin builds the [admin] table's token_file and state_file. The token is
// read here, as certificates are, so a reload that changes it is a change
// and a missing file is reported with its key.
func (b *builder) admin(a *Admin, raw rawAdmin) {
	r := b.r
	if f := r.str(raw.TokenFile, "admin.token_file", ""); f != "" {
		a.TokenFile = resolve(b.dir, f)
		data, err := os.ReadFile(a.TokenFile)
		switch {
		case err != nil:
			r.errorf("admin.token_file", "cannot read token file: %w", err)
		case strings.TrimSpace(string(data)) == "":
			r.errorf("admin.token_file", "token file %s is empty", a.TokenFile)
		default:
			a.Token = strings.TrimSpace(string(data))
			b.hashFile("admin.token_file", data)
			if fi, err := os.Stat(a.TokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
				r.warnf("admin.token_file", "token file %s is readable by group or others (mode %04o): chmod 600 it",
					a.TokenFile, fi.Mode().Perm())
			}
		}
	} else if raw.TokenFile.set && isString(raw.TokenFile) {
		r.errorf("admin.token_file", "empty file name")
	}
	if f := r.str(raw.StateFile, "admin.state_file", ""); f != "" {
		a.StateFile = resolve(b.dir, f)
	} else if raw.StateFile.set && isString(raw.StateFile) {
		r.errorf("admin.state_file", "empty file name")
	}
}
