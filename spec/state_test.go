package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	const secretValue = "s3cr3t-Value"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("SPEC_TEST_PW", secretValue)
	t.Setenv("SPEC_TEST_EMPTY", "")
	tests := []struct {
		name    string
		ssh     SSH
		want    string
		wantErr string
	}{
		{"env", SSH{PasswordEnv: "SPEC_TEST_PW"}, secretValue, ""},
		{"file newline", SSH{PasswordFile: write("pw", secretValue+"\n")}, secretValue, ""},
		{"file crlf", SSH{PasswordFile: write("pw-crlf", secretValue+"\r\n")}, secretValue, ""},
		{"file no newline", SSH{PasswordFile: write("pw-raw", secretValue)}, secretValue, ""},
		{"file keeps inner spaces", SSH{PasswordFile: write("pw-sp", " a b \n")}, " a b ", ""},
		{"env unset", SSH{PasswordEnv: "SPEC_TEST_UNSET_VAR"}, "", "SPEC_TEST_UNSET_VAR is not set"},
		{"env empty", SSH{PasswordEnv: "SPEC_TEST_EMPTY"}, "", "is empty"},
		{"file missing", SSH{PasswordFile: filepath.Join(dir, "nope")}, "", "no such file"},
		{"file empty", SSH{PasswordFile: write("empty", "\n")}, "", "is empty"},
		{"none", SSH{}, "", "no secret configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ssh.Password()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Password() = %q, %v; want error %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secretValue) {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Password() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// Passphrase reads its own fields only.
	s := SSH{PasswordEnv: "SPEC_TEST_PW", PassphraseFile: write("pp", "phrase\n")}
	if got, err := s.Passphrase(); err != nil || got != "phrase" {
		t.Errorf("Passphrase() = %q, %v", got, err)
	}
	if _, err := (SSH{PasswordEnv: "SPEC_TEST_PW"}).Passphrase(); !errors.Is(err, ErrNoSecret) {
		t.Errorf("Passphrase() with none set = %v, want ErrNoSecret", err)
	}
}

func TestStateHelpersWithoutTarget(t *testing.T) {
	var s State
	if got := s.NQN("x"); got != DefaultNQNPrefix+"x" {
		t.Errorf("NQN = %q", got)
	}
	if got := s.FilePath("x"); got != "x.img" {
		t.Errorf("FilePath = %q", got)
	}
	if got := s.TimeoutsFor(nil); got != (Timeouts{-1, 5, 0}) {
		t.Errorf("TimeoutsFor(nil) = %+v", got)
	}
	if got := s.HostNames(); len(got) != 0 {
		t.Errorf("HostNames = %v", got)
	}
}
