package webhook_test

import (
	"log"
	"log/slog"
	"net/http"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tend-gitops/tend/internal/controller"
	"github.com/tend-gitops/tend/internal/webhook"
)

// A receiver on its own port, reading the Secret tend-system/tend-webhook.
func ExampleReceiver() {
	c, err := client.New(ctrl.GetConfigOrDie(), client.Options{Scheme: controller.Scheme()})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/", &webhook.Receiver{
		Client:          c,
		SecretNamespace: "tend-system",
		SecretName:      "tend-webhook",
		Log:             slog.Default(),
	})
	log.Fatal(http.ListenAndServe(":9292", mux))
}
