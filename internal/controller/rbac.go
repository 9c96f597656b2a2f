package controller

// The API access herald-controller needs, and nothing more. `make generate`
// turns these markers into config/rbac/controller_role.yaml (ClusterRole
// and Role "herald-controller"); each marker says what it is for.
// Secrets, Nodes, EndpointSlices and Pods are deliberately absent, and
// so is get: the controller reads everything from its informers.

// Services: the informer watches every Service in the cluster.
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch
// Services: the herald.dev/pool-allocated annotation is a merge patch.
// +kubebuilder:rbac:groups="",resources=services,verbs=patch
// Services/status: status.loadBalancer.ingress is written with UpdateStatus.
// +kubebuilder:rbac:groups="",resources=services/status,verbs=update
// Namespaces: pools select Services by namespace labels.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// Events: IPAllocated, AllocationFailed, IPReleased, ExternalIPRefused (the
// recorder creates, then patches repeated events).
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// IPPools: watched; updated only to add and remove herald's finalizer.
// +kubebuilder:rbac:groups=herald.dev,resources=ippools,verbs=list;watch;update
// IPPools/status: usage counters.
// +kubebuilder:rbac:groups=herald.dev,resources=ippools/status,verbs=update
// BGPPeers: watched; their status sums the speakers' session reports.
// +kubebuilder:rbac:groups=herald.dev,resources=bgppeers,verbs=list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=bgppeers/status,verbs=update
// Speakers: read only; each speaker writes its own.
// +kubebuilder:rbac:groups=herald.dev,resources=speakers,verbs=list;watch

// Leases in herald's namespace: --leader-elect. Creating cannot be limited
// to one name; reading and renewing is limited to the herald-controller
// Lease.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=herald-system,resources=leases,verbs=create
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=herald-system,resources=leases,resourceNames=herald-controller,verbs=get;update
