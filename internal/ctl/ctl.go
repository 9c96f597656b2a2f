package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/internal/cli"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/cpvip"
	"github.com/heraldlb/herald/internal/version"
)

// Env is what a heraldctl run talks to: its streams, the clock (status
// shows ages) and, for tests, a fixed cluster configuration.
type Env struct {
	Name     string // the program name in messages: heraldctl or kubectl-herald
	In       io.Reader
	Out, Err io.Writer
	Now      func() time.Time
	// Config, if set, is used instead of --kubeconfig and the defaults.
	Config *rest.Config
	// Clock paces rotate-key's waits; nil is the real clock.
	Clock clock.Clock
}

// defaultHeraldNamespace is where install.yaml puts herald.
const defaultHeraldNamespace = "herald-system"

// requestTimeout bounds each API request, so that an unreachable cluster
// is reported instead of waited for.
const requestTimeout = 30 * time.Second

// Exit codes: 2 for bad usage, as the flag package does.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `Usage: %[1]s [--kubeconfig PATH] [--context NAME] [--log-level LEVEL] COMMAND [flags]

Commands:
  status          every Service address herald manages: pool, protocol,
                  announcing node(s), since when, and problems (-n NAMESPACE:
                  the Services of one namespace)
  version         heraldctl's version, and the versions the cluster's
                  herald-controller Pods and speakers report (--client: only
                  heraldctl's)
  pools           per IPPool and address family: total, allocated, free, ready
  import-metallb  convert MetalLB custom resources to herald's, and the MetalLB
                  annotations of Services to herald's (-f FILE, -f - for
                  stdin, or without -f: read them from the cluster, Services
                  of every namespace included)
  control-plane manifest
                  print the static Pod that keeps the API server's VIP on a
                  ready control-plane node, for /etc/kubernetes/manifests
                  (--vip, --peers; no cluster needed)
  rotate-key      replace the speakers' memberlist key without a restart: add
                  a new key to the Secret, make it the one that encrypts,
                  remove the old one, waiting after each step until every
                  live speaker reports it applied (--key-file FILE: the new
                  key's base64; default: a random 32-byte key)

Every command takes -o table|yaml|json (default table; import-metallb
defaults to yaml). import-metallb's yaml and json output holds only herald
objects, for kubectl apply; the herald annotations Services need come as
"# kubectl annotate ..." comment lines, at the end of the yaml output, and on
stderr before the diagnostics with -o json. To collect them for review:
  grep '^# kubectl annotate ' FILE | cut -c3- > annotate.sh
Installed as kubectl-herald (a symlink is enough), it runs as "kubectl herald".
Run '%[1]s COMMAND --help' for a command's flags.
`

// Main runs heraldctl with args (without the program name) and returns the
// process exit code.
func Main(ctx context.Context, env Env, args []string) int {
	if env.Name == "" {
		env.Name = "heraldctl"
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	var common cli.Common
	var file, namespace string
	var allNamespaces bool
	var importOpts convertOptions
	// Asked-for help goes to stdout, as kubectl's does (heraldctl --help |
	// less); help after a mistake goes to stderr.
	helpOut := env.Err
	if helpAsked(args) {
		helpOut = env.Out
	}
	top := flag.NewFlagSet(env.Name, flag.ContinueOnError)
	top.SetOutput(helpOut)
	common.Register(top)
	top.StringVar(&common.Context, "context", "", "the kubeconfig context to use (default: its current context)")
	top.StringVar(&namespace, "namespace", "", "status: only the Services of this namespace (default: every namespace)")
	top.StringVar(&namespace, "n", "", "short for --namespace")
	top.Usage = func() {
		_, _ = fmt.Fprintf(helpOut, usage, env.Name)
		_, _ = fmt.Fprintln(helpOut, "\nGlobal flags:")
		top.PrintDefaults()
	}
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if common.Version {
		_, _ = fmt.Fprintf(env.Out, "%s %s\n", env.Name, version.Get())
		return exitOK
	}
	if top.NArg() == 0 {
		top.Usage()
		return exitUsage
	}
	cmd, rest := top.Arg(0), top.Args()[1:]
	fs := flag.NewFlagSet(env.Name+" "+cmd, flag.ContinueOnError)
	if helpAsked(rest) {
		helpOut = env.Out
	}
	fs.SetOutput(helpOut)
	// The global flags are accepted after the command too.
	fs.StringVar(&common.Kubeconfig, "kubeconfig", common.Kubeconfig, "path to a kubeconfig; default: $KUBECONFIG, else the in-cluster config, else ~/.kube/config")
	fs.StringVar(&common.LogLevel, "log-level", common.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&common.Context, "context", common.Context, "the kubeconfig context to use (default: its current context)")
	defaultOut := "table"
	heraldNamespace := defaultHeraldNamespace
	clientOnly := false
	var rot rotateOptions
	var cp cpOptions
	class := defaultClass
	if cmd == "control-plane" {
		if len(rest) == 0 || rest[0] != "manifest" {
			_, _ = fmt.Fprintf(env.Err, "%s: usage: %s control-plane manifest --vip ADDR[,ADDR] --peers ADDR,ADDR,... [flags]\n", env.Name, env.Name)
			return exitUsage
		}
		rest = rest[1:]
		fs = flag.NewFlagSet(env.Name+" control-plane manifest", flag.ContinueOnError)
		fs.SetOutput(helpOut)
	}
	switch cmd {
	case "status":
		fs.StringVar(&class, "load-balancer-class", defaultClass, "herald-controller's --load-balancer-class: Services of this class (or none) are herald's")
		fs.StringVar(&namespace, "namespace", namespace, "only the Services of this namespace (default: every namespace)")
		fs.StringVar(&namespace, "n", namespace, "short for --namespace")
		// Every namespace is already the default; -A is taken for kubectl
		// habits, and refused beside -n rather than guessed at.
		fs.BoolVar(&allNamespaces, "all-namespaces", false, "the Services of every namespace (the default)")
		fs.BoolVar(&allNamespaces, "A", false, "short for --all-namespaces")
	case "version":
		fs.BoolVar(&clientOnly, "client", false, "print heraldctl's version only; do not contact the cluster")
		fs.StringVar(&heraldNamespace, "herald-namespace", defaultHeraldNamespace, "the namespace herald is installed in")
	case "pools":
	case "rotate-key":
		fs.StringVar(&heraldNamespace, "herald-namespace", defaultHeraldNamespace, "the namespace herald is installed in")
		fs.StringVar(&rot.secret, "secret", "herald-memberlist", "the memberlist key Secret")
		fs.StringVar(&rot.keyFile, "key-file", "", "file holding the new key's base64 (16, 24 or 32 bytes); default: a random 32-byte key")
		fs.DurationVar(&rot.timeout, "timeout", 5*time.Minute, "how long each step waits for every speaker")
	case "control-plane":
		defaultOut = "yaml"
		fs.StringVar(&cp.vips, "vip", "", "the API server's virtual address: one IPv4 and/or one IPv6 address, comma-separated (required)")
		fs.StringVar(&cp.peers, "peers", "", "every control-plane node's address, comma-separated (required); each node finds its own among them")
		fs.StringVar(&cp.iface, "interface", "", "interface to answer ARP/NDP on (default: the one whose subnet holds the VIP)")
		fs.StringVar(&cp.image, "image", defaultSpeakerImage(), "herald-speaker image")
		fs.StringVar(&cp.keyFile, "key-file", cpDefaultKeyFile, "the memberlist key's path on the nodes")
		fs.StringVar(&cp.caFile, "ca-file", cpvip.KubeadmCAFile, "the cluster CA's path on the nodes (kubeadm's)")
		fs.IntVar(&cp.port, "memberlist-port", cpvip.DefaultPort, "memberlist port of the control-plane nodes")
		fs.StringVar(&cp.bgpPeers, "bgp-peers", "", "routers to announce the VIP to over BGP instead of ARP/NDP, ADDR or ADDR:PORT, comma-separated (every ready node announces it)")
		fs.Uint64Var(&cp.bgpASN, "bgp-asn", 0, "the control-plane nodes' AS number (with --bgp-peers)")
		fs.Uint64Var(&cp.bgpPeerASN, "bgp-peer-asn", 0, "the routers' AS number (default: --bgp-asn)")
	case "import-metallb":
		defaultOut = "yaml"
		fs.StringVar(&file, "f", "", "file of MetalLB objects and Services (multi-document YAML, JSON or a List as kubectl get -A -o yaml prints); - reads stdin; unset: read them from the cluster")
		fs.BoolVar(&importOpts.AllowLossy, "allow-lossy", false, "convert what herald cannot express exactly to a narrower form where one exists (fewer nodes, interfaces, peers, Services or namespaces; never more), with a warning for each loss, instead of refusing it")
		fs.BoolVar(&importOpts.Hold, "hold", false, "write every IPPool with hold: true: herald keeps the addresses but announces none until a pool's hold is released (the cut-over from a running MetalLB, docs/migrating-from-metallb.md)")
	default:
		_, _ = fmt.Fprintf(env.Err, "%s: unknown command %q\nRun '%s --help' for the commands.\n", env.Name, cmd, env.Name)
		return exitUsage
	}
	output := fs.String("o", defaultOut, "output format: table, yaml or json")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	bad := func(err error) int {
		_, _ = fmt.Fprintf(env.Err, "%s: %v\nRun '%s --help' for the flags.\n", fs.Name(), err, fs.Name())
		return exitUsage
	}
	if fs.NArg() > 0 {
		return bad(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if allNamespaces && namespace != "" {
		return bad(fmt.Errorf("--all-namespaces and --namespace %q: give one", namespace))
	}
	switch *output {
	case "table", "yaml", "json":
	default:
		return bad(fmt.Errorf("invalid -o %q: want table, yaml or json", *output))
	}
	switch strings.ToLower(common.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		return bad(fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", common.LogLevel))
	}
	common.Logger(env.Err, "heraldctl") // routes client-go's logging to stderr at the chosen level

	if cmd == "control-plane" {
		return run(env, func() error { return controlPlaneManifest(env, cp, *output) })
	}
	if cmd == "import-metallb" && file != "" {
		return run(env, func() error { return importFile(env, file, *output, importOpts) })
	}
	if cmd == "version" && clientOnly {
		return run(env, func() error { return printVersions(env, *output, []componentVersion{clientVersion()}) })
	}
	cfg := env.Config
	if cfg == nil {
		var err error
		if cfg, err = common.RESTConfig("heraldctl"); err != nil {
			_, _ = fmt.Fprintf(env.Err, "%s: %v\n", env.Name, err)
			return exitError
		}
		// The daemons' dialer waits out API server outages; a command in a
		// user's shell must fail promptly instead.
		cfg.Dial = nil
		cfg.Timeout = requestTimeout
	}
	c, err := newClients(cfg)
	if err != nil {
		_, _ = fmt.Fprintf(env.Err, "%s: %v\n", env.Name, err)
		return exitError
	}
	switch cmd {
	case "status":
		return run(env, func() error { return status(ctx, env, c, class, namespace, *output) })
	case "version":
		return run(env, func() error {
			vs, err := clusterVersions(ctx, c, heraldNamespace)
			if err != nil {
				_ = printVersions(env, *output, []componentVersion{clientVersion()})
				return err
			}
			return printVersions(env, *output, append([]componentVersion{clientVersion()}, vs...))
		})
	case "pools":
		return run(env, func() error { return pools(ctx, env, c, *output) })
	case "rotate-key":
		rot.namespace = heraldNamespace
		clk := env.Clock
		if clk == nil {
			clk = clock.RealClock{}
		}
		return run(env, func() error { return rotateKey(ctx, env, c, clk, rot) })
	default:
		return run(env, func() error { return importCluster(ctx, env, c, *output, importOpts) })
	}
}

// helpAsked reports whether args ask for help before their first
// non-flag argument (the command, for the global flags).
func helpAsked(args []string) bool {
	for _, a := range args {
		switch {
		case a == "-h" || a == "-help" || a == "--help" || a == "--h":
			return true
		case a == "--" || !strings.HasPrefix(a, "-"):
			return false
		}
	}
	return false
}

func run(env Env, f func() error) int {
	if err := f(); err != nil {
		_, _ = fmt.Fprintf(env.Err, "%s: %v\n", env.Name, err)
		return exitError
	}
	return exitOK
}

type clients struct {
	kube    kubernetes.Interface
	herald  versioned.Interface
	dynamic dynamic.Interface
}

func newClients(cfg *rest.Config) (*clients, error) {
	var c clients
	var err error
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	if c.herald, err = versioned.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating the herald client: %w", err)
	}
	if c.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating the dynamic client: %w", err)
	}
	return &c, nil
}

// printStructured writes v as YAML or JSON.
func printStructured(w io.Writer, format string, v any) error {
	var data []byte
	var err error
	if format == "json" {
		data, err = json.MarshalIndent(v, "", "  ")
		data = append(data, '\n')
	} else {
		data, err = yaml.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encoding %s: %w", format, err)
	}
	_, err = w.Write(data)
	return err
}

func openInput(env Env, file string) (io.ReadCloser, error) {
	if file == "-" {
		return io.NopCloser(env.In), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening MetalLB objects: %w", err)
	}
	return f, nil
}
