package lab

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// LabelBackendNode marks the Pods of a kubelet lab's backend Deployment
// with the node it is pinned to.
const LabelBackendNode = "herald.lab/backend-node"

// kubelet reports whether the lab's nodes run a kubelet.
func (l *Lab) kubelet() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.Kubelet
}

// backendDeployment is the Deployment "<app>-<node>": one Pod of the
// backend image on node, labelled app=<app>, run as the manifest runs
// herald (non-root, read-only root filesystem, no capabilities), with its
// node and Pod names from the downward API.
func backendDeployment(ns, app, node string) *appsv1.Deployment {
	labels := map[string]string{"app": app, LabelBackendNode: node}
	env := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app + "-" + node, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{corev1.LabelHostname: node},
					// The backend exits at once on SIGTERM.
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					AutomountServiceAccountToken:  ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "backend",
						Image:           BackendImage,
						ImagePullPolicy: corev1.PullNever,
						Env:             []corev1.EnvVar{env("NODE_NAME", "spec.nodeName"), env("POD_NAME", "metadata.name")},
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: BackendPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(BackendPort)}},
							PeriodSeconds: 1,
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

// NodeKind says what the lab's nodes run, for the benches' headers.
func (l *Lab) NodeKind() string {
	if l.kubelet() {
		return "kubelet nodes (herald from install.yaml)"
	}
	return "process nodes"
}

// BackendAddr is the address the backend of app on node listens on: its
// Pod's with kubelet nodes (AddBackend first), the node's own otherwise,
// where every node runs a backend process.
func (l *Lab) BackendAddr(ctx context.Context, ns, app, node string) (string, error) {
	if !l.kubelet() {
		return l.Node(node).Address.String(), nil
	}
	sel := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"app": app, LabelBackendNode: node}})
	pods, err := l.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			return p.Status.PodIP, nil
		}
	}
	return "", fmt.Errorf("no backend Pod of %s/%s with an address on %s", ns, app, node)
}

// addBackendDeployment creates the backend Deployment of app on node and
// waits until its Pod is Ready.
func (l *Lab) addBackendDeployment(ctx context.Context, ns, app, node string) error {
	d := backendDeployment(ns, app, node)
	if _, err := l.Kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating backend deployment %s/%s: %w", ns, d.Name, err)
	}
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	var last string
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		pods, err := l.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				return true, nil
			}
			last = podSummary(&p)
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for backend %s/%s to be ready: %w (last: %s)", ns, d.Name, err, last)
	}
	return nil
}

// removeBackendDeployment deletes the backend Deployment of app on node
// and waits until its Pods are gone.
func (l *Lab) removeBackendDeployment(ctx context.Context, ns, app, node string) error {
	name := app + "-" + node
	err := l.Kube.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting backend deployment %s/%s: %w", ns, name, err)
	}
	sel := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"app": app, LabelBackendNode: node}})
	// Gone means the Deployment too: a foreground deletion lets it go only
	// after its Pods, and creating it again meanwhile is refused.
	return poll(ctx, 60*time.Second, func() (bool, error) {
		pods, err := l.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil || len(pods.Items) > 0 {
			return false, nil
		}
		_, err = l.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podSummary says where a Pod is on its way to Ready, for errors.
func podSummary(p *corev1.Pod) string {
	s := fmt.Sprintf("pod %s on %q: %s", p.Name, p.Spec.NodeName, p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			s += fmt.Sprintf("; %s: %s", c.Type, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			s += fmt.Sprintf("; %s waiting: %s %s", cs.Name, w.Reason, w.Message)
		}
	}
	return s
}
