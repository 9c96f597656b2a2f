// Command herald-controller assigns external addresses from IPPools to
// LoadBalancer Services and writes them into the Services' status.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/heraldlb/herald/internal/cli"
	"github.com/heraldlb/herald/internal/client/clientset/versioned"
	"github.com/heraldlb/herald/internal/controller"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/metricsserver"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var (
		common      cli.Common
		class       string
		onlyClass   bool
		metricsAddr string
		leaderElect bool
		workers     int
		profiling   cli.Profiling
	)
	fs := flag.NewFlagSet("herald-controller", flag.ExitOnError)
	common.Register(fs)
	fs.StringVar(&class, "load-balancer-class", "herald.dev/lb", "spec.loadBalancerClass handled by herald")
	fs.BoolVar(&onlyClass, "only-class", false, "handle only Services of --load-balancer-class (default: Services with no class too)")
	fs.StringVar(&metricsAddr, "metrics-addr", ":7472", "address serving /metrics, /healthz and /readyz")
	fs.BoolVar(&leaderElect, "leader-elect", false, "elect a leader through a Lease so a second replica can stand by")
	fs.IntVar(&workers, "workers", 4, "Services reconciled in parallel (API writes dominate)")
	profiling.Register(fs)
	cli.Parse(fs, &common, args, func() error {
		if class == "" {
			return fmt.Errorf("--load-balancer-class must not be empty")
		}
		if workers < 1 {
			return fmt.Errorf("--workers must be at least 1, got %d", workers)
		}
		return nil
	})
	log := common.Logger(os.Stderr, "herald-controller")
	cli.LogStart(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := common.RESTConfig("herald-controller")
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	// A burst of 10 000 Services means 20 000 writes; client-go's default
	// 5 QPS would make herald, not the API server, the bottleneck.
	cfg.QPS, cfg.Burst = 200, 400
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	herald, err := versioned.NewForConfig(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "herald-controller"})

	reg := metricsserver.NewRegistry()
	ctrl := controller.New(controller.Config{
		Kube: kube, Herald: herald,
		Class:    k8s.Class{Name: class, Only: onlyClass},
		Recorder: recorder, Log: log, Registry: reg, Workers: workers,
	})
	// A standby replica is ready: it can take over the moment it must.
	var leading atomic.Bool
	ready := func() error {
		if leaderElect && !leading.Load() {
			return nil
		}
		return ctrl.Ready()
	}
	go func() {
		if err := metricsserver.Serve(ctx, metricsAddr, reg, ready, bool(profiling), log); err != nil {
			log.Error("metrics server stopped", "err", err)
			stop()
		}
	}()

	if !leaderElect {
		if err := ctrl.Run(ctx); err != nil {
			log.Error("controller stopped", "err", err)
			return 1
		}
		return 0
	}
	return runElected(ctx, kube, ctrl, &leading, log)
}

// runElected runs the controller only while this replica holds the Lease.
// Losing it ends the process: a fresh start rebuilds state from the
// Services, which is simpler and safer than pausing in place.
func runElected(ctx context.Context, kube kubernetes.Interface, ctrl *controller.Controller, leading *atomic.Bool, log *slog.Logger) int {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "herald-system"
	}
	id, _ := os.Hostname()
	if pod := os.Getenv("POD_NAME"); pod != "" {
		id = pod
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: "herald-controller"},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	code := 0
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("became leader", "identity", id)
				leading.Store(true)
				if err := ctrl.Run(ctx); err != nil {
					log.Error("controller stopped", "err", err)
					code = 1
				}
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					log.Error("lost leadership; exiting so a fresh start rebuilds state")
					code = 1
				}
			},
		},
	})
	return code
}
