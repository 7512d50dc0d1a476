package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The kubelet's plugin registration API (k8s.io/kubelet
// pkg/apis/pluginregistration/v1, what node-driver-registrar serves): the
// kubelet watches <kubelet-dir>/plugins_registry for sockets, asks each
// GetInfo (type, name, the CSI endpoint, versions), then calls NodeGetInfo
// on that endpoint, writes the CSINode and the node's annotation, and
// reports the outcome with NotifyRegistrationStatus.
//
// The node plugin serves it itself because node-driver-registrar is not on
// the Go module proxy (a cluster without registry access cannot run it), and
// because the whole API is two calls. Its messages are described here, in
// code, and carried by dynamicpb over the standard gRPC proto codec, so no
// generated code (and no k8s.io/kubelet with its gogo/protobuf) is needed.
// The wire format is fixed by the .proto below; registration_test.go checks
// it byte for byte with a hand-written encoder.
//
//	package pluginregistration;
//	message PluginInfo { string type = 1; string name = 2; string endpoint = 3; repeated string supported_versions = 4; }
//	message RegistrationStatus { bool plugin_registered = 1; string error = 2; }
//	message RegistrationStatusResponse {}
//	message InfoRequest {}
//	service Registration {
//	  rpc GetInfo(InfoRequest) returns (PluginInfo) {}
//	  rpc NotifyRegistrationStatus(RegistrationStatus) returns (RegistrationStatusResponse) {}
//	}

// RegistrationServiceName is the gRPC service the kubelet calls.
const RegistrationServiceName = "pluginregistration.Registration"

// csiPluginType is PluginInfo.type for a CSI driver (pluginregistration.CSIPlugin).
const csiPluginType = "CSIPlugin"

// csiRegistrationVersions are the versions of the kubelet's CSI plugin API
// this node supports; the kubelet picks one it knows (node-driver-registrar
// sends the same).
var csiRegistrationVersions = []string{"1.0.0"}

// RegistrationSocket is where the kubelet looks for a driver's registration
// socket: <kubelet-dir>/plugins_registry/<driver>-reg.sock, the name
// node-driver-registrar uses.
func RegistrationSocket(kubeletDir, driver string) string {
	return filepath.Join(kubeletDir, "plugins_registry", driver+"-reg.sock")
}

// maxSocketPath is the longest unix socket path Linux binds.
const maxSocketPath = 107

// Registration configures ServeRegistration.
type Registration struct {
	// Driver is the CSI driver name the kubelet registers (the CSIDriver's).
	Driver string
	// Endpoint is the node plugin's CSI socket as the kubelet sees it on the
	// host (an absolute path), node-driver-registrar's
	// --kubelet-registration-path.
	Endpoint string
	// Socket is the registration socket to serve (RegistrationSocket).
	Socket string
	Logger *slog.Logger
	// OnStatus, when set, is called with each NotifyRegistrationStatus: ok
	// and the kubelet's error text.
	OnStatus func(ok bool, msg string)
}

type registrationTypes struct {
	pluginInfo, infoRequest, status, statusResponse protoreflect.MessageDescriptor
}

var (
	regTypesOnce sync.Once
	regTypes     registrationTypes
	regTypesErr  error
)

// registrationDescriptors builds the message descriptors of the .proto above.
func registrationDescriptors() (registrationTypes, error) {
	regTypesOnce.Do(func() {
		str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
		boolean := descriptorpb.FieldDescriptorProto_TYPE_BOOL.Enum()
		opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
		rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		field := func(name, json string, num int32, t *descriptorpb.FieldDescriptorProto_Type, l *descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto {
			return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(json), Number: proto.Int32(num), Type: t, Label: l}
		}
		fdp := &descriptorpb.FileDescriptorProto{
			// Not registered globally: a process that also links the
			// kubelet's generated code must not see a conflict.
			Name:    proto.String("rds-reconcile/csi/pluginregistration.proto"),
			Package: proto.String("pluginregistration"),
			Syntax:  proto.String("proto3"),
			MessageType: []*descriptorpb.DescriptorProto{
				{Name: proto.String("PluginInfo"), Field: []*descriptorpb.FieldDescriptorProto{
					field("type", "type", 1, str, opt),
					field("name", "name", 2, str, opt),
					field("endpoint", "endpoint", 3, str, opt),
					field("supported_versions", "supportedVersions", 4, str, rep),
				}},
				{Name: proto.String("RegistrationStatus"), Field: []*descriptorpb.FieldDescriptorProto{
					field("plugin_registered", "pluginRegistered", 1, boolean, opt),
					field("error", "error", 2, str, opt),
				}},
				{Name: proto.String("RegistrationStatusResponse")},
				{Name: proto.String("InfoRequest")},
			},
		}
		fd, err := protodesc.NewFile(fdp, nil)
		if err != nil {
			regTypesErr = fmt.Errorf("plugin registration descriptors: %w", err)
			return
		}
		ms := fd.Messages()
		regTypes = registrationTypes{
			pluginInfo:     ms.ByName("PluginInfo"),
			status:         ms.ByName("RegistrationStatus"),
			statusResponse: ms.ByName("RegistrationStatusResponse"),
			infoRequest:    ms.ByName("InfoRequest"),
		}
	})
	return regTypes, regTypesErr
}

// registrationServer answers the kubelet's two calls.
type registrationServer struct {
	cfg Registration
	t   registrationTypes
}

func (s *registrationServer) getInfo(ctx context.Context, dec func(any) error) (any, error) {
	in := dynamicpb.NewMessage(s.t.infoRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	out := dynamicpb.NewMessage(s.t.pluginInfo)
	f := s.t.pluginInfo.Fields()
	out.Set(f.ByName("type"), protoreflect.ValueOfString(csiPluginType))
	out.Set(f.ByName("name"), protoreflect.ValueOfString(s.cfg.Driver))
	out.Set(f.ByName("endpoint"), protoreflect.ValueOfString(s.cfg.Endpoint))
	vs := out.Mutable(f.ByName("supported_versions")).List()
	for _, v := range csiRegistrationVersions {
		vs.Append(protoreflect.ValueOfString(v))
	}
	s.cfg.Logger.InfoContext(ctx, "kubelet asked for the plugin info", "driver", s.cfg.Driver, "endpoint", s.cfg.Endpoint)
	return out, nil
}

func (s *registrationServer) notify(ctx context.Context, dec func(any) error) (any, error) {
	in := dynamicpb.NewMessage(s.t.status)
	if err := dec(in); err != nil {
		return nil, err
	}
	f := s.t.status.Fields()
	ok := in.Get(f.ByName("plugin_registered")).Bool()
	msg := in.Get(f.ByName("error")).String()
	if ok {
		s.cfg.Logger.InfoContext(ctx, "registered with the kubelet", "driver", s.cfg.Driver, "endpoint", s.cfg.Endpoint)
	} else {
		// The kubelet retries a failed registration by itself; the plugin
		// keeps serving so that it can.
		s.cfg.Logger.ErrorContext(ctx, "the kubelet refused the registration; check that --kubelet-registration-path is the CSI socket as the kubelet sees it and that the kubelet can reach it",
			"driver", s.cfg.Driver, "endpoint", s.cfg.Endpoint, "kubeletError", msg)
	}
	if s.cfg.OnStatus != nil {
		s.cfg.OnStatus(ok, msg)
	}
	return dynamicpb.NewMessage(s.t.statusResponse), nil
}

func (s *registrationServer) desc() *grpc.ServiceDesc {
	// No interceptor is installed on this server, so none is called.
	unary := func(fn func(*registrationServer, context.Context, func(any) error) (any, error), name string) grpc.MethodDesc {
		return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			return fn(srv.(*registrationServer), ctx, dec)
		}}
	}
	return &grpc.ServiceDesc{
		ServiceName: RegistrationServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary((*registrationServer).getInfo, "GetInfo"),
			unary((*registrationServer).notify, "NotifyRegistrationStatus"),
		},
		Metadata: "pluginregistration/api.proto",
	}
}

// ServeRegistration serves the kubelet's plugin registration API on
// cfg.Socket until ctx ends, then stops and removes the socket (the kubelet
// deregisters a plugin whose socket is gone). Call it once the CSI endpoint
// listens: the kubelet calls NodeGetInfo on it right after GetInfo.
func ServeRegistration(ctx context.Context, cfg Registration) error {
	if cfg.Driver == "" || cfg.Socket == "" {
		return errors.New("plugin registration: the driver name and the socket are required")
	}
	if !filepath.IsAbs(cfg.Endpoint) || filepath.Clean(cfg.Endpoint) != cfg.Endpoint {
		return fmt.Errorf("plugin registration: the CSI endpoint the kubelet connects to must be an absolute, clean socket path, such as /var/lib/kubelet/plugins/%s/csi.sock; got %q", cfg.Driver, cfg.Endpoint)
	}
	// sun_path holds 108 bytes with the terminating NUL; bind(2) would
	// only say "invalid argument".
	if len(cfg.Socket) > maxSocketPath {
		return fmt.Errorf("plugin registration socket %s is %d bytes long, a unix socket path at most %d: use a shorter kubelet directory", cfg.Socket, len(cfg.Socket), maxSocketPath)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t, err := registrationDescriptors()
	if err != nil {
		return err
	}
	lis, err := Listen("unix://" + cfg.Socket)
	if err != nil {
		return fmt.Errorf("plugin registration socket %s (is <kubelet-dir>/plugins_registry writable?): %w", cfg.Socket, err)
	}
	rs := &registrationServer{cfg: cfg, t: t}
	srv := grpc.NewServer()
	srv.RegisterService(rs.desc(), rs)
	cfg.Logger.InfoContext(ctx, "serving the kubelet plugin registration", "socket", cfg.Socket, "driver", cfg.Driver, "endpoint", cfg.Endpoint)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		srv.GracefulStop()
		<-errc
	}
	if rerr := os.Remove(cfg.Socket); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = fmt.Errorf("removing the registration socket: %w", rerr)
	}
	return err
}
