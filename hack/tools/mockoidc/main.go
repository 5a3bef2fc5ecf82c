// Command mockoidc runs a mock OpenID Connect provider on loopback, standing in for the
// platform's identity provider in the access-layer process tests. It prints one line,
// "issuer=<url> control=<url>", once both listeners are up.
//
// The provider approves every authorization request at once (no login page) for the next
// queued user; POST <control>/users?email=<address> queues one. It serves until SIGINT or
// SIGTERM, or until its standard input closes (the test that started it has exited).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/oauth2-proxy/mockoidc"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address of the provider")
	control := flag.String("control", "127.0.0.1:0", "address of the control endpoint")
	clientID := flag.String("client-id", "", "the client ID to accept (default: random)")
	clientSecret := flag.String("client-secret", "", "the client secret to accept (default: random)")
	flag.Parse()

	provider, err := mockoidc.NewServer(nil)
	if err != nil {
		log.Fatalf("creating the provider: %v", err)
	}
	if *clientID != "" {
		provider.ClientID = *clientID
	}
	if *clientSecret != "" {
		provider.ClientSecret = *clientSecret
	}
	providerListener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listening on %s: %v", *listen, err)
	}
	if err := provider.Start(providerListener, nil); err != nil {
		log.Fatalf("starting the provider: %v", err)
	}

	controlListener, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatalf("listening on %s: %v", *control, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		email := r.URL.Query().Get("email")
		if email == "" {
			http.Error(w, "email is required", http.StatusBadRequest)
			return
		}
		provider.QueueUser(&mockoidc.MockUser{
			Subject:           email,
			Email:             email,
			EmailVerified:     true,
			PreferredUsername: email,
		})
		w.WriteHeader(http.StatusNoContent)
	})
	go func() {
		log.Fatal(http.Serve(controlListener, mux))
	}()

	fmt.Printf("issuer=%s control=http://%s\n", provider.Issuer(), controlListener.Addr())
	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		done <- syscall.SIGTERM
	}()
	<-done
	_ = provider.Shutdown()
}
