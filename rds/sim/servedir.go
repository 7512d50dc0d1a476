package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// Files ServeDir keeps in its folder.
const (
	HostKeyFile    = "host_key"
	ClientKeyFile  = "client_key"
	KnownHostsFile = "known_hosts"
	StateFile      = "state.json"
)

// ServeDir starts a simulator whose keys and state live in dir: it creates,
// when missing, dir/host_key and dir/client_key (ed25519; the client key is
// authorized), serves on listen, then writes dir/known_hosts for the address
// it got. State persists in dir/state.json unless opts.StatePath says
// otherwise. The returned server stops when ctx ends or on Close.
func ServeDir(ctx context.Context, dir, listen string, opts Options) (*Server, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("sim dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("sim dir: %w", err)
	}
	if opts.HostKey == nil {
		hk, err := loadOrCreateKey(filepath.Join(abs, HostKeyFile))
		if err != nil {
			return nil, err
		}
		if opts.HostKey, err = ssh.NewSignerFromKey(hk); err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
	}
	keyPath := filepath.Join(abs, ClientKeyFile)
	if opts.ClientKey == nil {
		if opts.ClientKey, err = loadOrCreateKey(keyPath); err != nil {
			return nil, err
		}
	}
	pub, err := ssh.NewPublicKey(opts.ClientKey.Public())
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	if err := os.WriteFile(keyPath+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	if opts.StatePath == "" {
		opts.StatePath = filepath.Join(abs, StateFile)
	}
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx, listen); err != nil {
		return nil, err
	}
	khPath := filepath.Join(abs, KnownHostsFile)
	if err := os.WriteFile(khPath, []byte(s.KnownHostsLine()+"\n"), 0o644); err != nil {
		s.Close()
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	s.keyFile, s.knownHostsFile = keyPath, khPath
	return s, nil
}

// loadOrCreateKey reads an OpenSSH ed25519 private key, or writes a new one.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", filepath.Base(path), err)
		}
		blk, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", filepath.Base(path), err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
			return nil, fmt.Errorf("write key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("%s: not an ed25519 key", path)
}

type yamlTarget struct {
	Target struct {
		Address  string `yaml:"address"`
		NVMePort int    `yaml:"nvmePort"`
		SSH      struct {
			Address        string `yaml:"address"`
			User           string `yaml:"user"`
			PrivateKeyFile string `yaml:"privateKeyFile,omitempty"`
			KnownHostsFile string `yaml:"knownHostsFile,omitempty"`
		} `yaml:"ssh"`
		BasePath string `yaml:"basePath"`
	} `yaml:"target"`
}

// TargetYAML is a `target:` block for a state file that reaches this
// simulator as it is: nvmeAddress is where hosts connect for NVMe/TCP (the
// nvmet backend's address; any address for the others). The key and
// known_hosts files are those ServeDir wrote, with absolute paths.
func (s *Server) TargetYAML(nvmeAddress string) string {
	var t yamlTarget
	t.Target.Address = nvmeAddress
	t.Target.NVMePort = 4420
	t.Target.SSH.Address = s.Addr()
	t.Target.SSH.User = "admin"
	t.Target.SSH.PrivateKeyFile = s.keyFile
	t.Target.SSH.KnownHostsFile = s.knownHostsFile
	t.Target.BasePath = "/" + s.poolName + "/volumes"
	out, err := yaml.Marshal(&t)
	if err != nil {
		return ""
	}
	return string(out)
}
