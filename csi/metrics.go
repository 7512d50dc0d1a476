package csi

import (
	"context"
	"log/slog"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are the per-operation Prometheus series of the CSI server.
type metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rds_reconcile",
			Subsystem: "csi",
			Name:      "operations_total",
			Help:      "CSI calls served, by method and gRPC status code (OK for success).",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "rds_reconcile",
			Subsystem: "csi",
			Name:      "operation_duration_seconds",
			Help:      "Time to serve a CSI call, by method.",
			// From a quick Probe to a CreateVolume that waits for the RDS and
			// a NodeStage that formats a large volume.
			Buckets: []float64{0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"method"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// interceptor logs and measures every call. Requests are not logged: they
// may carry secrets (the CSI secrets fields); method, volume and outcome are.
func (m *metrics) interceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method := path.Base(info.FullMethod)
		start := time.Now()
		resp, err := handler(ctx, req)
		elapsed := time.Since(start)
		code := status.Code(err)
		m.calls.WithLabelValues(method, code.String()).Inc()
		m.duration.WithLabelValues(method).Observe(elapsed.Seconds())
		attrs := []any{"method", method, "code", code.String(), "duration", elapsed.Round(time.Microsecond)}
		if v, ok := req.(interface{ GetVolumeId() string }); ok && v.GetVolumeId() != "" {
			attrs = append(attrs, "volume", v.GetVolumeId())
		} else if v, ok := req.(interface{ GetName() string }); ok && v.GetName() != "" {
			attrs = append(attrs, "name", v.GetName())
		}
		switch {
		case err != nil:
			log.WarnContext(ctx, "csi call failed", append(attrs, "error", status.Convert(err).Message())...)
		case method == "Probe" || method == "NodeGetCapabilities" || method == "GetPluginInfo":
			// Polled every few seconds by the sidecars: debug only.
			log.DebugContext(ctx, "csi call", attrs...)
		default:
			log.InfoContext(ctx, "csi call", attrs...)
		}
		return resp, err
	}
}
