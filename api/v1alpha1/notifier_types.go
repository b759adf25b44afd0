package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotifierSpec says which App events go where.
// +kubebuilder:validation:XValidation:rule="self.provider in ['matrix', 'telegram', 'slack'] || !has(self.channel) || size(self.channel) == 0",message="channel is only used by the slack, matrix and telegram providers"
type NotifierSpec struct {
	// Provider delivers the messages: discord, slack, matrix, teams
	// (Microsoft Teams workflow webhook), telegram, webhook (generic JSON
	// signed with HMAC-SHA256), or github, gitlab, gitea (commit statuses
	// on the App's source repository).
	// +kubebuilder:validation:Enum=discord;slack;matrix;teams;telegram;webhook;github;gitlab;gitea
	Provider string `json:"provider"`
	// Address is the webhook URL (discord, slack, teams, webhook), the
	// homeserver URL (matrix) or the API base URL (telegram, slack with a
	// token, github, gitlab, gitea). Webhook URLs embed a credential: put
	// them in the Secret's "address" key instead, which wins over this field.
	// +optional
	Address string `json:"address,omitempty"`
	// Channel is the Slack channel (with a bot token), the Matrix room ID
	// (!room:server) or the Telegram chat ID.
	// +optional
	Channel string `json:"channel,omitempty"`
	// Username is the sender name shown where the provider allows one
	// (Discord, Slack webhooks).
	// +optional
	Username string `json:"username,omitempty"`
	// SecretRef names a Secret in the Notifier's namespace with the
	// credentials: "address" (a webhook URL), "token" (Slack bot, Matrix
	// access, Telegram bot or forge token) and "hmacKey" (generic webhook
	// signing key).
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// AppSelector selects the Apps, in the Notifier's namespace, whose
	// events are sent; empty selects every App there.
	// +optional
	AppSelector *metav1.LabelSelector `json:"appSelector,omitempty"`
	// Apps names the Apps, in the Notifier's namespace, whose events are
	// sent; with appSelector an App must match both. Empty: any App, unless
	// spec.sources is set (then appSelector {} selects every App).
	// +optional
	Apps []string `json:"apps,omitempty"`
	// Sources selects the Sources, in the Notifier's namespace, whose
	// events (FetchFailed, NewRevision) are sent; unset sends none. With
	// sources set and neither apps nor appSelector, no App events are sent.
	// +optional
	Sources *NotifierSources `json:"sources,omitempty"`
	// Stages selects the Stages, in the Notifier's namespace, whose
	// promotion events (Promoted, PromotionFailed, VerificationFailed,
	// WaitingForApproval) are sent; unset sends none. Like sources, it
	// alone sends no App events.
	// +optional
	Stages *NotifierStages `json:"stages,omitempty"`
	// Events lists the event types to send: SyncStarted, SyncSucceeded,
	// SyncFailed, HealthDegraded, HealthRecovered, DriftDetected,
	// DriftCorrected, Pruned, HookFailed, RolledBack (of Apps), FetchFailed,
	// NewRevision (of Sources), Promoted, PromotionFailed,
	// VerificationFailed, WaitingForApproval (of Stages). Empty: all of
	// them (subject to severity).
	// +optional
	Events []NotifierEvent `json:"events,omitempty"`
	// Severity is the lowest severity sent: info (everything), warning
	// (drift detected, rollbacks, and errors) or error (sync and hook
	// failures, degraded health).
	// +kubebuilder:validation:Enum=info;warning;error
	// +kubebuilder:default=info
	// +optional
	Severity string `json:"severity,omitempty"`
	// InclusionList, when set, sends only the events whose message or error
	// matches one of these regular expressions (Go's RE2 syntax).
	// +optional
	InclusionList []string `json:"inclusionList,omitempty"`
	// ExclusionList: events whose message or error matches one of these
	// regular expressions are not sent.
	// +optional
	ExclusionList []string `json:"exclusionList,omitempty"`
	// Metadata is added to every message: as fields of chat messages and
	// as "metadata" of the generic webhook's JSON.
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`
	// BaseURL, when set, makes messages link to the App:
	// <baseURL>/apps/<namespace>/<name>.
	// +optional
	BaseURL string `json:"baseURL,omitempty"`
	// DedupeWindow: the same event (kind, revision, error) for the same App
	// is sent once within this window.
	// +kubebuilder:default="10m"
	// +optional
	DedupeWindow metav1.Duration `json:"dedupeWindow,omitempty"`
	// Suspend stops sending; events meanwhile are dropped.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// NotifierEvent is an App, Source or Stage event type.
// +kubebuilder:validation:Enum=SyncStarted;SyncSucceeded;SyncFailed;HealthDegraded;HealthRecovered;DriftDetected;DriftCorrected;Pruned;HookFailed;RolledBack;FetchFailed;NewRevision;Promoted;PromotionFailed;VerificationFailed;WaitingForApproval
type NotifierEvent string

// NotifierStages selects Stages whose events a Notifier sends: a Stage
// must match every field set; {} selects every Stage.
type NotifierStages struct {
	// Names selects Stages by name; empty: any name.
	// +optional
	Names []string `json:"names,omitempty"`
	// Selector selects Stages by label.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// NotifierSources selects Sources whose events a Notifier sends: a Source
// must match every field set.
type NotifierSources struct {
	// Names selects Sources by name; empty: any name.
	// +optional
	Names []string `json:"names,omitempty"`
	// Types selects Sources by type: git, helm (chart repositories, over
	// HTTP or OCI) or oci (OCI artifacts: spec.oci with a ref). Empty: any.
	// +optional
	Types []SourceType `json:"types,omitempty"`
	// Selector selects Sources by label.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// SourceType is the kind of a Source's origin.
// +kubebuilder:validation:Enum=git;helm;oci
type SourceType string

// Source types.
const (
	SourceTypeGit  SourceType = "git"
	SourceTypeHelm SourceType = "helm"
	SourceTypeOCI  SourceType = "oci"
)

// NotifierStatus reports deliveries.
type NotifierStatus struct {
	// ObservedGeneration is the spec generation last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (the provider is configured and the last delivery
	// succeeded).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Sent counts messages delivered since the controller started.
	// +optional
	Sent int64 `json:"sent,omitempty"`
	// Failed counts messages given up on after retries since the
	// controller started.
	// +optional
	Failed int64 `json:"failed,omitempty"`
	// LastSentAt is when a message was last delivered.
	// +optional
	LastSentAt *metav1.Time `json:"lastSentAt,omitempty"`
	// LastFailureAt is when a delivery last failed.
	// +optional
	LastFailureAt *metav1.Time `json:"lastFailureAt,omitempty"`
	// LastError is the last delivery failure (never containing credentials).
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=tend
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`
// +kubebuilder:printcolumn:name="Sent",type=integer,JSONPath=`.status.sent`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Notifier sends App events (sync, health, drift, prune, hooks, rollback)
// to a chat, a webhook or a forge's commit statuses.
type Notifier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NotifierSpec   `json:"spec,omitempty"`
	Status NotifierStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// NotifierList is a list of Notifiers.
type NotifierList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Notifier `json:"items"`
}
