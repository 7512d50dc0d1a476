package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rds-reconcile/rds-reconcile/kube"
	"github.com/rds-reconcile/rds-reconcile/spec"
)

// kubeConfig is the API server configuration: the kubeconfig file when
// given, else the pod's service account (in-cluster).
func kubeConfig(kubeconfig, context string) (*kube.Config, error) {
	if kubeconfig != "" {
		return kube.FromKubeconfig(kubeconfig, context)
	}
	if context != "" {
		return nil, errors.New("--context names a context of --kubeconfig FILE")
	}
	return kube.InCluster(kube.ServiceAccountDir, os.Getenv)
}

// openConfigMapLayer opens the layer named by --layer configmap://NS/NAME.
func openConfigMapLayer(layer, kubeconfig, context string, log *slog.Logger) (*kube.ConfigMapLayer, error) {
	ref, err := kube.ParseLayerRef(layer)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--layer %w", err)}
	}
	cfg, err := kubeConfig(kubeconfig, context)
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	c, err := kube.New(cfg)
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	log.Info("CSI layer in a ConfigMap", "layer", ref.String(), "key", kube.LayerKey, "apiServer", cfg.String())
	return kube.NewConfigMapLayer(c, ref, log), nil
}

// isConfigMapLayer tells a --layer that names a ConfigMap.
func isConfigMapLayer(layer string) bool { return strings.HasPrefix(layer, "configmap:") }

// controllerLayer is the CSI controller's layer: the file in the state
// dir, or the ConfigMap --layer names (importing the file once into it).
func controllerLayer(ctx context.Context, f *csiFlags, log *slog.Logger) (controllerLayerStore, error) {
	file := filepath.Join(f.stateDir, "csi-volumes.yaml")
	switch {
	case f.layer == "":
		if f.kubeconfig != "" {
			return nil, &exitError{code: 2, err: errors.New("--kubeconfig goes with --layer configmap://NAMESPACE/NAME")}
		}
		return spec.OpenStore(file), nil
	case !isConfigMapLayer(f.layer):
		return nil, &exitError{code: 2, err: fmt.Errorf("--layer %q: give configmap://NAMESPACE/NAME, or leave it out for %s", f.layer, file)}
	}
	l, err := openConfigMapLayer(f.layer, f.kubeconfig, "", log)
	if err != nil {
		return nil, err
	}
	// An older version kept the layer in the state dir's file: import it
	// once (only into a ConfigMap without a layer), then rename it.
	if _, err := l.Import(ctx, file); err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return l, nil
}

// controllerLayerStore is csi.ControllerLayer (named here so the wiring
// reads without the csi import).
type controllerLayerStore interface {
	Name() string
	Load(ctx context.Context) ([]byte, error)
	Update(ctx context.Context, fn func(*spec.State) error) error
}

func newCSILayerCmd(g *globals) *cobra.Command {
	var layer, kubeconfig, context, out string
	cmd := &cobra.Command{
		Use:   "csi-layer --layer configmap://NAMESPACE/NAME [--kubeconfig FILE] [-o FILE]",
		Short: "Write the CSI controller's layer (kept in a ConfigMap) to a file, for plan",
		Long: `csi-layer fetches the desired-state layer the CSI controller keeps in a
Kubernetes ConfigMap (csi --layer configmap://NAMESPACE/NAME, key
` + kube.LayerKey + `) and writes it as the state file it is, so that

  rds-reconcile plan -f base.yaml -f csi-volumes.yaml

shows the whole truth from a workstation. The API server and credentials come
from --kubeconfig (its current-context, or --context), else from the pod's
service account. It only reads (RBAC: get on that ConfigMap). The layer is
validated as plan would read it; a missing ConfigMap is an empty layer.`,
		Example: `  rds-reconcile csi-layer --layer configmap://rds-reconcile/rds-csi-volumes \
      --kubeconfig ~/.kube/config -o csi-volumes.yaml
  rds-reconcile plan -f base.yaml -f csi-volumes.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				kubeconfig = os.Getenv("KUBECONFIG")
				if i := strings.IndexByte(kubeconfig, os.PathListSeparator); i >= 0 {
					kubeconfig = kubeconfig[:i] // the first file only: no merging here
				}
			}
			l, err := openConfigMapLayer(layer, kubeconfig, context, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			data, err := l.Load(cmd.Context())
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			st, err := spec.ParseLayer(l.Name(), data)
			if err == nil {
				data, err = spec.EncodeLayer(l.Name(), st)
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("the layer in %s: %w", l.Name(), err)}
			}
			if out == "" || out == "-" {
				_, err = g.stdout.Write(data)
				return err
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(g.stderr, "Wrote %s (%d volumes) to %s\n", l.Name(), len(st.Volumes), out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&layer, "layer", "", "the ConfigMap that holds the layer: configmap://NAMESPACE/NAME")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG; without either, the pod's service account)")
	fl.StringVar(&context, "context", "", "kubeconfig context (default its current-context)")
	fl.StringVarP(&out, "output", "o", "", "write the layer to this file (default stdout)")
	_ = cmd.MarkFlagRequired("layer")
	return cmd
}
