package speaker

// The API access herald-speaker needs, and nothing more. `make generate`
// turns these markers into config/rbac/speaker_role.yaml (ClusterRole and
// Role "herald-speaker"); each marker says what it is for. The speaker
// never writes Services, IPPools or BGPPeers, and reads Secrets only in
// herald's own namespace.

// Services and EndpointSlices: which addresses to announce, and which nodes
// have ready endpoints (externalTrafficPolicy: Local).
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// Nodes: this node's InternalIP (get at start) and the memberlist peers.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// Events: Announcing, AnnounceFailed, AddressConflict on Services;
// SessionUp, SessionDown, PeerConfigProblem on BGPPeers.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// IPPools and BGPPeers: read only (announce only addresses in a pool).
// +kubebuilder:rbac:groups=herald.dev,resources=ippools;bgppeers,verbs=list;watch
// Speakers: each speaker creates the Speaker named after its node and
// reports what it announces in its status.
// +kubebuilder:rbac:groups=herald.dev,resources=speakers,verbs=get;create
// +kubebuilder:rbac:groups=herald.dev,resources=speakers/status,verbs=update

// Secrets in herald's namespace only: BGP passwords (passwordSecretRef),
// and the memberlist key Secret, watched so that a key rotation applies
// without a restart (the speaker starts from the mounted copy).
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=list;watch
