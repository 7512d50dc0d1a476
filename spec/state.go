package spec

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// TimeoutsFor resolves the connection timeouts of v: a field the volume sets
// wins over the defaults section, which Load has filled from the seed values.
func (s *State) TimeoutsFor(v *Volume) Timeouts {
	t := Timeouts{CtrlLossTmo: DefaultCtrlLossTmo, ReconnectDelay: DefaultReconnectDelay, KeepAliveTmo: DefaultKeepAliveTmo}
	var layers []Connection
	if s.Defaults != nil {
		layers = append(layers, s.Defaults.Connection)
	}
	if v != nil {
		layers = append(layers, v.Connection)
	}
	for _, c := range layers {
		if c.CtrlLossTmo != nil {
			t.CtrlLossTmo = *c.CtrlLossTmo
		}
		if c.ReconnectDelay != nil {
			t.ReconnectDelay = *c.ReconnectDelay
		}
		if c.KeepAliveTmo != nil {
			t.KeepAliveTmo = *c.KeepAliveTmo
		}
	}
	return t
}

// NQN is the subsystem NQN of the volume called name: NQNPrefix + name.
func (s *State) NQN(name string) string {
	prefix := DefaultNQNPrefix
	if s.Target != nil && s.Target.NQNPrefix != "" {
		prefix = s.Target.NQNPrefix
	}
	return prefix + name
}

// ManagedNQNPrefix is the NQN prefix of every controller this state owns:
// nqnPrefix followed by slotPrefix, so a slot prefix narrows ownership on the
// hosts as it does on the RDS. Only controllers under it are ever
// disconnected (orphans included).
func (s *State) ManagedNQNPrefix() string {
	if s.Target == nil {
		return s.NQN("")
	}
	return s.NQN(s.Target.SlotPrefix)
}

// FilePath is the RDS file backing the volume called name, exactly as
// RouterOS names it in /disk file-path and /file: basePath without a leading
// "/" (RouterOS file names have none), then "/<name>.img", e.g.
// "storage-pool/volumes/db.img".
func (s *State) FilePath(name string) string {
	base := ""
	if s.Target != nil {
		base = strings.TrimPrefix(s.Target.BasePath, "/")
	}
	if base == "" {
		return name + ".img"
	}
	return base + "/" + name + ".img"
}

// Volume returns the volume called name, or nil.
func (s *State) Volume(name string) *Volume {
	for i := range s.Volumes {
		if s.Volumes[i].Name == name {
			return &s.Volumes[i]
		}
	}
	return nil
}

// HostNames returns the declared host names, sorted.
func (s *State) HostNames() []string {
	names := make([]string, 0, len(s.Hosts))
	for n := range s.Hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrNoSecret means the state names no source for the secret asked for.
var ErrNoSecret = errors.New("no secret configured")

// Password returns the SSH password from passwordEnv or passwordFile.
// It returns ErrNoSecret when neither is set. Errors never hold the secret.
func (s SSH) Password() (string, error) {
	return secret("password", s.PasswordEnv, s.PasswordFile)
}

// Passphrase returns the private key passphrase from passphraseEnv or
// passphraseFile, or ErrNoSecret when neither is set.
func (s SSH) Passphrase() (string, error) {
	return secret("passphrase", s.PassphraseEnv, s.PassphraseFile)
}

func secret(what, env, file string) (string, error) {
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", fmt.Errorf("SSH %s: environment variable %s is not set", what, env)
		}
		if v == "" {
			return "", fmt.Errorf("SSH %s: environment variable %s is empty", what, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			// *os.PathError holds the path and the errno, never the content.
			return "", fmt.Errorf("SSH %s: %w", what, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("SSH %s: file %s is empty", what, file)
		}
		return v, nil
	}
	return "", fmt.Errorf("SSH %s: %w", what, ErrNoSecret)
}
