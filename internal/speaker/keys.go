package speaker

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/internal/memberkey"
)

// KeySetter takes a new list of memberlist keys (membership.Cluster).
type KeySetter interface {
	SetKeys(keys [][]byte) error
}

// WatchKeys follows the memberlist key Secret (namespace/name) and hands
// every new key list to keys, until ctx ends. The speaker starts with the
// keys of the mounted Secret file, which it can read without the API
// server; it watches the Secret itself rather than the file because the
// kubelet refreshes a mounted Secret only every minute or so, and at a
// different moment on each node, so each step of a rotation would wait for
// the slowest node's kubelet. A watch delivers the change to every speaker
// within a second. A list that does not parse is logged and ignored: the
// speaker keeps the keys it has.
func WatchKeys(ctx context.Context, kube kubernetes.Interface, namespace, name string, keys KeySetter, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("secret", namespace+"/"+name)
	// No resync: a watch sees every change, and a resync would only hand
	// the same keys again.
	factory := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0,
		kubeinformers.WithNamespace(namespace),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	inf := factory.Core().V1().Secrets().Informer()
	var last string
	apply := func(obj any) {
		// The field selector already keeps other Secrets out; a client
		// that ignores it (a fake) must not hand their keys on.
		s, ok := obj.(*corev1.Secret)
		if !ok || s.Name != name {
			return
		}
		text := string(s.Data[memberkey.SecretKey])
		if text == last {
			return
		}
		last = text
		list, err := memberkey.Parse(text)
		if err != nil {
			log.Error("memberlist key Secret refused; keeping the current keys", "err", err)
			return
		}
		fps := memberkey.Fingerprints(list)
		if err := keys.SetKeys(list); err != nil {
			log.Error("applying the memberlist keys", "keys", fps, "err", err)
			return
		}
		log.Info("memberlist keys from the Secret", "keys", fps)
	}
	// The handlers run one at a time, so last needs no lock. A deleted
	// Secret changes nothing: the speakers keep their keys.
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    apply,
		UpdateFunc: func(_, obj any) { apply(obj) },
	}); err != nil {
		log.Error("watching the memberlist key Secret", "err", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}
