package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/version"
)

// Common are the flags every binary has.
type Common struct {
	Kubeconfig string
	LogLevel   string
	Version    bool
	// Context is a kubeconfig context (heraldctl's --context); empty: the
	// kubeconfig's current one.
	Context string
}

// Register adds the common flags to fs.
func (c *Common) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: $KUBECONFIG, else the in-cluster config, else ~/.kube/config")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.Version, "version", false, "print the version and git revision, then exit")
}

// RegisterLocal adds the common flags of a mode that talks to no API
// server: --log-level and --version, without --kubeconfig.
func (c *Common) RegisterLocal(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.Version, "version", false, "print the version and git revision, then exit")
}

// Parse parses args and validates the common flags. Bad input exits 2 with
// a message, as the flag package does for unknown flags.
func Parse(fs *flag.FlagSet, c *Common, args []string, validate func() error) {
	if err := fs.Parse(args); err != nil {
		os.Exit(2) // the flag package has printed why (or the help, which exits 0 itself)
	}
	if c.Version {
		_, _ = fmt.Fprintf(os.Stdout, "%s %s\n", fs.Name(), version.Get())
		os.Exit(0)
	}
	if fs.NArg() > 0 {
		Fail(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if _, err := level(c.LogLevel); err != nil {
		Fail(fs, err)
	}
	if validate != nil {
		if err := validate(); err != nil {
			Fail(fs, err)
		}
	}
}

// Fail reports a bad flag value and exits 2.
func Fail(fs *flag.FlagSet, err error) {
	_, _ = fmt.Fprintf(fs.Output(), "%s: %v\nRun '%s --help' for the flags.\n", fs.Name(), err, fs.Name())
	os.Exit(2)
}

func level(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", s)
}

// Logger returns the JSON logger for component and routes klog (client-go's
// logging) into it, so one process writes one log format.
func (c *Common) Logger(w io.Writer, component string) *slog.Logger {
	lvl, _ := level(c.LogLevel) // validated by Parse
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})).With("component", component)
	klog.SetSlogLogger(log.With("source", "client-go"))
	return log
}

// LogStart logs the build a long-running binary starts with, so every log
// says which version wrote it.
func LogStart(log *slog.Logger) {
	v := version.Get()
	log.Info("starting", "version", v.Version, "revision", v.Revision, "goversion", v.GoVersion)
}

// RESTConfig finds the cluster: --kubeconfig, else $KUBECONFIG, else the
// in-cluster config, else ~/.kube/config. $KUBECONFIG comes before the
// in-cluster config as in kubectl: whoever sets it inside a Pod means it.
func (c *Common) RESTConfig(userAgent string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Context}
	switch {
	case c.Kubeconfig != "":
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	case c.Context != "" || os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "":
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	default:
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("loading the cluster configuration: %w", err)
	}
	cfg.UserAgent = userAgent + "/" + version.Get().Version
	k8s.PatientDial(cfg)
	return cfg, nil
}

// Profiling is the --profiling flag of the long-running binaries. Off by
// default: the profiles show internals (object names, addresses) to anyone
// who can reach the metrics port.
type Profiling bool

// Register adds --profiling to fs.
func (p *Profiling) Register(fs *flag.FlagSet) {
	fs.BoolVar((*bool)(p), "profiling", false, "also serve Go's /debug/pprof/ profiles on the metrics address (CPU, heap; for diagnosing resource use)")
}
