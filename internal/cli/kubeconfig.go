package cli

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeFlags select a cluster like kubectl does: --kubeconfig, then
// $KUBECONFIG, then ~/.kube/config, then the in-cluster service account;
// --context picks a context.
type kubeFlags struct {
	kubeconfig string
	context    string
	namespace  string
}

func (k *kubeFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context to use")
	fs.StringVarP(&k.namespace, "namespace", "n", "", "namespace (default: the context's namespace)")
}

func (k *kubeFlags) loader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context})
}

// restConfig returns the REST config, falling back to in-cluster config.
func (k *kubeFlags) restConfig() (*rest.Config, error) {
	cfg, err := k.loader().ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if k.kubeconfig == "" && k.context == "" {
		if ic, icErr := rest.InClusterConfig(); icErr == nil {
			return ic, nil
		}
	}
	return nil, fmt.Errorf("no usable kubeconfig (%v); pass --kubeconfig or set KUBECONFIG", err)
}
