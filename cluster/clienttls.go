package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// clientTLSDir is the directory, inside the data root, of the client TLS
// files (Config.ClientTLS).
const clientTLSDir = "client-tls"

// ClientTLSFiles are the PEM files a client of the members' client URLs
// needs when Config.ClientTLS is set: what etcdctl takes as --cacert, --cert
// and --key. They exist from Start until Close.
type ClientTLSFiles struct {
	// CAFile is the certificate of the CA that signed every member's server
	// certificate (and the client certificate below).
	CAFile string
	// CertFile and KeyFile are a client certificate signed by that CA
	// (Common Name "locksim client") and its private key; "" unless
	// Config.ClientCertAuth.
	CertFile, KeyFile string
}

// TLSConfig loads the files into the TLS config of a client
// (clientv3.Config.TLS).
func (f ClientTLSFiles) TLSConfig() (*tls.Config, error) {
	cfg, err := transport.TLSInfo{CertFile: f.CertFile, KeyFile: f.KeyFile, TrustedCAFile: f.CAFile}.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster: client TLS: %w", err)
	}
	return cfg, nil
}

// clientPKI is the client side's own CA, apart from the peer CA: a
// certificate made for a client of the members is never accepted by the
// peer proxies, and a member's peer certificate never by a client URL.
type clientPKI struct {
	dir   string
	files ClientTLSFiles
	// serverCert and serverKey are the members' server certificate (one for
	// all: they share Host) and its key.
	serverCert, serverKey string
	certAuth              bool
}

// newClientPKI creates a CA, the members' server certificate for host and,
// with certAuth, a client certificate, and writes them to dir.
func newClientPKI(dir, host string, certAuth bool) (*clientPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: client certificates: %w", err)
	}
	ca, caKey, err := newCA("locksim client CA")
	if err != nil {
		return nil, err
	}
	p := &clientPKI{
		dir:        dir,
		files:      ClientTLSFiles{CAFile: filepath.Join(dir, "ca.crt")},
		serverCert: filepath.Join(dir, "server.crt"),
		serverKey:  filepath.Join(dir, "server.key"),
		certAuth:   certAuth,
	}
	if err := writePEM(p.files.CAFile, "CERTIFICATE", ca.Raw); err != nil {
		return nil, err
	}
	srv, srvKey, err := newCert(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "locksim etcd member"},
		IPAddresses: []net.IP{net.ParseIP(host)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		// Client auth too: with --client-cert-auth, etcd's HTTP gateway
		// dials the member's own gRPC server presenting this certificate.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	if err := writeKeyPair(p.serverCert, p.serverKey, srv, srvKey); err != nil {
		return nil, err
	}
	if !certAuth {
		return p, nil
	}
	cli, cliKey, err := newCert(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "locksim client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	p.files.CertFile, p.files.KeyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := writeKeyPair(p.files.CertFile, p.files.KeyFile, cli, cliKey); err != nil {
		return nil, err
	}
	return p, nil
}

// serverInfo is the members' client TLS config (embed.Config.ClientTLSInfo).
func (p *clientPKI) serverInfo() transport.TLSInfo {
	info := transport.TLSInfo{CertFile: p.serverCert, KeyFile: p.serverKey}
	if p.certAuth {
		info.ClientCertAuth = true
		info.TrustedCAFile = p.files.CAFile
	}
	return info
}

// ClientTLSFiles returns the files a client needs to reach the members'
// TLS client URLs. ErrNoClientTLS without Config.ClientTLS; ErrNotStarted
// before Start; ErrClosed after Close (the files are gone).
func (c *Cluster) ClientTLSFiles() (ClientTLSFiles, error) {
	if !c.cfg.ClientTLS {
		return ClientTLSFiles{}, ErrNoClientTLS
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usableLocked(); err != nil {
		return ClientTLSFiles{}, err
	}
	return c.clientPKI.files, nil
}
