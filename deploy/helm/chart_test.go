package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "opsbot"
	release   = "ops"
	namespace = "chatops"
	fullname  = "ops-opsbot"
)

// manifests is one render of the chart, each object decoded strictly into
// its Kubernetes type, so a misspelt field fails like kubectl would.
type manifests struct {
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	Secret         *corev1.Secret
	ServiceAccount *corev1.ServiceAccount
	PVC            *corev1.PersistentVolumeClaim
	PDB            *policyv1.PodDisruptionBudget
	Ingress        *networkingv1.Ingress
	ServiceMonitor map[string]any // a CRD: no Go type here
	Notes          string
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	require.NoError(t, err)
	return ch
}

// render renders the chart as `helm template ops opsbot -n chatops -f
// values.yaml` would, values being YAML.
func render(t *testing.T, values string) (manifests, error) {
	t.Helper()
	return renderChart(t, loadChart(t), values)
}

// renderChart renders ch (a chart as loaded, or as `helm package` changed it).
func renderChart(t *testing.T, ch *chart.Chart, values string) (manifests, error) {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	require.NoError(t, err)
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true, Revision: 1}, chartutil.DefaultCapabilities)
	require.NoError(t, err)
	files, err := engine.Render(ch, top)
	if err != nil {
		return manifests{}, err
	}
	var m manifests
	for name, text := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			m.Notes = text
			continue
		}
		for _, doc := range releaseutil.SplitManifests(text) {
			var head struct{ Kind string }
			require.NoError(t, yaml.Unmarshal([]byte(doc), &head), name)
			var obj any
			switch head.Kind {
			case "":
				continue // a template that rendered nothing
			case "Deployment":
				m.Deployment = &appsv1.Deployment{}
				obj = m.Deployment
			case "Service":
				m.Service = &corev1.Service{}
				obj = m.Service
			case "ConfigMap":
				m.ConfigMap = &corev1.ConfigMap{}
				obj = m.ConfigMap
			case "Secret":
				m.Secret = &corev1.Secret{}
				obj = m.Secret
			case "ServiceAccount":
				m.ServiceAccount = &corev1.ServiceAccount{}
				obj = m.ServiceAccount
			case "PersistentVolumeClaim":
				m.PVC = &corev1.PersistentVolumeClaim{}
				obj = m.PVC
			case "PodDisruptionBudget":
				m.PDB = &policyv1.PodDisruptionBudget{}
				obj = m.PDB
			case "Ingress":
				m.Ingress = &networkingv1.Ingress{}
				obj = m.Ingress
			case "ServiceMonitor":
				obj = &m.ServiceMonitor
			default:
				t.Fatalf("%s: unexpected kind %q", name, head.Kind)
			}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s: %s", name, head.Kind)
		}
	}
	return m, nil
}

func mustRender(t *testing.T, values string) manifests {
	t.Helper()
	m, err := render(t, values)
	require.NoError(t, err)
	require.NotNil(t, m.Deployment)
	return m
}

func container(t *testing.T, m manifests) corev1.Container {
	t.Helper()
	require.Len(t, m.Deployment.Spec.Template.Spec.Containers, 1)
	return m.Deployment.Spec.Template.Spec.Containers[0]
}

func envVar(t *testing.T, c corev1.Container, name string) corev1.EnvVar {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("container has no %s", name)
	return corev1.EnvVar{}
}

func hasEnv(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// lintMessages runs `helm lint` on the chart with values, and returns its
// warnings and errors.
func lintMessages(t *testing.T, values string) []string {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	require.NoError(t, err)
	var out []string
	for _, msg := range lint.All(chartDir, vals, namespace, false).Messages {
		if msg.Severity >= support.WarningSev {
			out = append(out, msg.Error())
		}
	}
	return out
}

func TestChart_LintIsClean(t *testing.T) {
	for name, values := range map[string]string{
		"defaults":         ``,
		"sqlite":           "replicaCount: 1\ndatabase: {type: sqlite}\n",
		"everything on":    "existingSecret: opsbot\nssh: {existingSecret: opsbot-ssh, knownHosts: 'h ssh-ed25519 AAAA'}\ningress: {enabled: true, className: nginx, tls: [{secretName: t, hosts: [opsbot.example.com]}]}\nmetrics: {serviceMonitor: {enabled: true}}\n",
		"existing configs": "policy: {existingConfigMap: opsbot-policy}\n",
	} {
		t.Run(name, func(t *testing.T) {
			assert.Empty(t, lintMessages(t, values))
		})
	}
}

func TestChart_DefaultsRunTwoReplicasOnPostgreSQL(t *testing.T) {
	m := mustRender(t, ``)
	require.NotNil(t, m.Deployment.Spec.Replicas)
	assert.EqualValues(t, 2, *m.Deployment.Spec.Replicas)
	assert.Empty(t, m.Deployment.Spec.Strategy.Type, "rolling update, the Deployment default")
	assert.Nil(t, m.PVC, "PostgreSQL holds the state")
	require.NotNil(t, m.PDB, "two replicas get a disruption budget")
	assert.Equal(t, 1, m.PDB.Spec.MinAvailable.IntValue())
	c := container(t, m)
	assert.Equal(t, "opsbot:0.1.0", c.Image, "the chart's appVersion")
	assert.Equal(t, []string{"serve"}, c.Args)
	assert.Equal(t, ":8080", envVar(t, c, "OPSBOT_HTTP_ADDR").Value)
}

func TestChart_PodRunsNonRootReadOnlyWithoutCapabilities(t *testing.T) {
	m := mustRender(t, ``)
	pod := m.Deployment.Spec.Template.Spec
	require.NotNil(t, pod.SecurityContext)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.EqualValues(t, 65532, *pod.SecurityContext.RunAsUser, "the image's USER")
	assert.EqualValues(t, 65532, *pod.SecurityContext.FSGroup)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)
	assert.False(t, *pod.AutomountServiceAccountToken, "the bot never calls the Kubernetes API")
	assert.False(t, *m.ServiceAccount.AutomountServiceAccountToken)

	sc := container(t, m).SecurityContext
	require.NotNil(t, sc)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Empty(t, sc.Capabilities.Add)

	// A read-only root needs every writable path mounted.
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range container(t, m).VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	assert.False(t, mounts["/var/lib/opsbot"].ReadOnly)
	assert.False(t, mounts["/tmp"].ReadOnly)
	assert.True(t, mounts["/etc/opsbot"].ReadOnly)
}

func TestChart_ProbesAskHealthzAndReadyzOnTheServedPort(t *testing.T) {
	m := mustRender(t, ``)
	c := container(t, m)
	require.Len(t, c.Ports, 1)
	assert.Equal(t, "http", c.Ports[0].Name)
	assert.EqualValues(t, 8080, c.Ports[0].ContainerPort)

	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "http", c.LivenessProbe.HTTPGet.Port.String())
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port.String())

	require.Len(t, m.Service.Spec.Ports, 1)
	assert.Equal(t, "http", m.Service.Spec.Ports[0].TargetPort.String())
	assert.Equal(t, m.Deployment.Spec.Selector.MatchLabels, m.Service.Spec.Selector)
}

func TestChart_ContainerPortMovesTheListenAddress(t *testing.T) {
	c := container(t, mustRender(t, "containerPort: 9090\n"))
	assert.EqualValues(t, 9090, c.Ports[0].ContainerPort)
	assert.Equal(t, ":9090", envVar(t, c, "OPSBOT_HTTP_ADDR").Value)
}

func TestChart_SecretsReachTheBotOnlyAsSecretKeyRefs(t *testing.T) {
	m := mustRender(t, "secrets: {databaseURL: 'postgres://u:p@db/opsbot', slackBotToken: xoxb-1, slackSigningSecret: s3cret}\n")
	c := container(t, m)
	want := map[string]string{
		"OPSBOT_DATABASE":                  "database-url",
		"OPSBOT_SLACK_BOT_TOKEN":           "slack-bot-token",
		"OPSBOT_SLACK_SIGNING_SECRET":      "slack-signing-secret",
		"OPSBOT_SLACK_APP_TOKEN":           "slack-app-token",
		"OPSBOT_MATTERMOST_TOKEN":          "mattermost-token",
		"OPSBOT_MATTERMOST_COMMAND_TOKENS": "mattermost-command-tokens",
		"OPSBOT_MATTERMOST_ACTION_SECRET":  "mattermost-action-secret",
	}
	for name, key := range want {
		e := envVar(t, c, name)
		assert.Empty(t, e.Value, "%s: never a literal value", name)
		require.NotNil(t, e.ValueFrom, name)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, name)
		ref := e.ValueFrom.SecretKeyRef
		assert.Equal(t, fullname, ref.Name, name)
		assert.Equal(t, key, ref.Key, name)
		if name == "OPSBOT_DATABASE" {
			assert.Nil(t, ref.Optional, "no database URL: the pod must not start on a default store")
		} else {
			require.NotNil(t, ref.Optional, name)
			assert.True(t, *ref.Optional, "%s: a platform not in use has no key", name)
		}
	}
	require.NotNil(t, m.Secret)
	assert.Equal(t, fullname, m.Secret.Name)
	assert.Equal(t, map[string]string{
		"database-url":         "postgres://u:p@db/opsbot",
		"slack-bot-token":      "xoxb-1",
		"slack-signing-secret": "s3cret",
	}, m.Secret.StringData, "only the keys given")
}

func TestChart_ExistingSecretIsReferencedNotCreated(t *testing.T) {
	m := mustRender(t, "existingSecret: team-opsbot\n")
	assert.Nil(t, m.Secret)
	c := container(t, m)
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			assert.Equal(t, "team-opsbot", e.ValueFrom.SecretKeyRef.Name, e.Name)
		}
	}
	assert.NotContains(t, m.Deployment.Spec.Template.Annotations, "checksum/secret")
	assert.NotContains(t, m.Notes, "no chat credentials")
}

func TestChart_NotesWarnWithoutCredentials(t *testing.T) {
	m := mustRender(t, ``)
	assert.Contains(t, m.Notes, "WARNING: no chat credentials")
	assert.Contains(t, m.Notes, "no database URL")
	assert.Contains(t, m.Notes, "curl -i http://127.0.0.1:8080/readyz")
}

var (
	buildOnce sync.Once
	opsbotBin string
	buildErr  error
)

// opsbot builds the bot from this repository once (or takes $OPSBOT_BIN),
// so that the policy is checked by the very code that will read it.
func opsbot(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if opsbotBin = os.Getenv("OPSBOT_BIN"); opsbotBin != "" {
			return
		}
		dir, err := os.MkdirTemp("", "opsbot-chart-test-")
		if err != nil {
			buildErr = err
			return
		}
		opsbotBin = filepath.Join(dir, "opsbot")
		cmd := exec.Command("go", "build", "-o", opsbotBin, "./cmd/opsbot")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	require.NoError(t, buildErr)
	return opsbotBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build ./cmd/opsbot: " + e.err.Error() + "\n" + e.out }

// configCheck runs `opsbot config check` on a policy, with a throwaway
// store and no other OPSBOT_ settings, and returns what it printed.
func configCheck(t *testing.T, policy string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"config", "check"}
	if policy != "" {
		file := filepath.Join(dir, "policy.yaml")
		require.NoError(t, os.WriteFile(file, []byte(policy), 0o600))
		args = append(args, "--config", file)
	}
	cmd := exec.Command(opsbot(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPSBOT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "OPSBOT_DATABASE="+filepath.Join(dir, "check.db"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The policy in the ConfigMap must be one the bot accepts: its decoder is
// strict, so a key the chart made up would stop every pod.
func TestChart_PolicyConfigMapPassesOpsbotConfigCheck(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "policy.example.yaml"))
	require.NoError(t, err)
	contentValues, err := yaml.Marshal(map[string]any{"policy": map[string]any{"content": string(example)}})
	require.NoError(t, err)
	builtin, err := configCheck(t, "")
	require.NoError(t, err, builtin)
	for name, tc := range map[string]struct {
		values string
		check  func(t *testing.T, policy, out string)
	}{
		"defaults: the built-in policy": {``, func(t *testing.T, _, out string) {
			assert.Equal(t, afterFirstLine(builtin), afterFirstLine(out), "the same targets, limits, permissions and approvals as no file at all")
		}},
		"config as values": {"policy: {config: {users: {'slack:U024BE7LH': [admin]}, roles: {admin: {commands: ['*']}}, limits: {scan_ports: 1000}}}\n", func(t *testing.T, _, out string) {
			assert.Contains(t, out, "scan_ports 1000")
			assert.Contains(t, out, "permissions: 1 roles, 1 users")
		}},
		"content from --set-file, kept as written": {string(contentValues), func(t *testing.T, policy, _ string) {
			assert.Equal(t, strings.TrimSpace(string(example)), strings.TrimSpace(policy), "comments and all")
		}},
	} {
		t.Run(name, func(t *testing.T) {
			m := mustRender(t, tc.values)
			require.NotNil(t, m.ConfigMap)
			policy := m.ConfigMap.Data["policy.yaml"]
			out, err := configCheck(t, policy)
			require.NoError(t, err, "policy.yaml:\n%s\nopsbot config check:\n%s", policy, out)
			assert.Contains(t, out, "policy OK: ")
			tc.check(t, policy, out)
		})
	}
}

func TestChart_PolicyConfigCheckCatchesAnUnknownKey(t *testing.T) {
	m := mustRender(t, "policy: {config: {limits: {scan_port: 10}}}\n")
	out, err := configCheck(t, m.ConfigMap.Data["policy.yaml"])
	require.Error(t, err, "a misspelt key must stop the bot, not loosen a rule")
	assert.Contains(t, out, `unknown field "scan_port"`)
}

// afterFirstLine drops the line naming the policy file, and the store's
// (a different temporary file each run).
func afterFirstLine(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	var keep []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "  store: ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func TestChart_PolicyIsMountedWhereOpsbotConfigPoints(t *testing.T) {
	m := mustRender(t, ``)
	c := container(t, m)
	assert.Equal(t, "/etc/opsbot/policy.yaml", envVar(t, c, "OPSBOT_CONFIG").Value)
	var found bool
	for _, v := range m.Deployment.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			found = true
			assert.Equal(t, fullname, v.ConfigMap.Name)
			for _, vm := range c.VolumeMounts {
				if vm.Name == v.Name {
					assert.Equal(t, "/etc/opsbot", vm.MountPath)
				}
			}
		}
	}
	assert.True(t, found, "a ConfigMap volume")

	other := mustRender(t, "policy: {existingConfigMap: team-policy}\n")
	assert.Nil(t, other.ConfigMap)
	for _, v := range other.Deployment.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			assert.Equal(t, "team-policy", v.ConfigMap.Name)
		}
	}
}

func TestChart_NewPolicyRollsThePods(t *testing.T) {
	a := mustRender(t, "policy: {config: {limits: {scan_ports: 100}}}\n")
	b := mustRender(t, "policy: {config: {limits: {scan_ports: 200}}}\n")
	ca := a.Deployment.Spec.Template.Annotations["checksum/config"]
	assert.NotEmpty(t, ca)
	assert.NotEqual(t, ca, b.Deployment.Spec.Template.Annotations["checksum/config"])
}

func TestChart_ServiceMonitorOnlyWhenAsked(t *testing.T) {
	assert.Nil(t, mustRender(t, ``).ServiceMonitor)

	m := mustRender(t, "metrics: {serviceMonitor: {enabled: true, labels: {release: prom}}}\n")
	sm := m.ServiceMonitor
	require.NotNil(t, sm)
	assert.Equal(t, "monitoring.coreos.com/v1", sm["apiVersion"])
	meta := sm["metadata"].(map[string]any)
	assert.Equal(t, "prom", meta["labels"].(map[string]any)["release"])
	spec := sm["spec"].(map[string]any)
	endpoints := spec["endpoints"].([]any)
	require.Len(t, endpoints, 1)
	ep := endpoints[0].(map[string]any)
	assert.Equal(t, "http", ep["port"], "the service's port name")
	assert.Equal(t, "/metrics", ep["path"])
	sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
	for k, v := range m.Service.Spec.Selector {
		assert.Equal(t, v, sel[k], "selects the service by %s", k)
	}
	for k, v := range sel {
		assert.Equal(t, v, m.Service.Labels[k], "the service carries %s", k)
	}
}

func TestChart_IngressRoutesOnlyTheChatEndpoints(t *testing.T) {
	assert.Nil(t, mustRender(t, ``).Ingress)

	m := mustRender(t, "ingress: {enabled: true, className: nginx, hosts: [bot.example.org]}\n")
	require.NotNil(t, m.Ingress)
	require.Len(t, m.Ingress.Spec.Rules, 1)
	rule := m.Ingress.Spec.Rules[0]
	assert.Equal(t, "bot.example.org", rule.Host)
	var paths []string
	for _, p := range rule.HTTP.Paths {
		paths = append(paths, p.Path)
		assert.Equal(t, fullname, p.Backend.Service.Name)
		assert.Equal(t, "http", p.Backend.Service.Port.Name)
	}
	assert.Equal(t, []string{"/slack/", "/mattermost/"}, paths, "never /metrics, /healthz or /readyz")
}

func TestChart_SQLiteRefusesSeveralReplicas(t *testing.T) {
	_, err := render(t, "database: {type: sqlite}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set replicaCount=1")

	_, err = render(t, "database: {type: mysql}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "database.type must be postgres or sqlite")
}

func TestChart_SQLiteKeepsItsFileOnAClaim(t *testing.T) {
	m := mustRender(t, "replicaCount: 1\ndatabase: {type: sqlite}\n")
	c := container(t, m)
	db := envVar(t, c, "OPSBOT_DATABASE")
	assert.Equal(t, "/var/lib/opsbot/opsbot.db", db.Value)
	assert.Nil(t, db.ValueFrom)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, m.Deployment.Spec.Strategy.Type, "one pod owns the file")
	require.NotNil(t, m.PVC)
	assert.Nil(t, m.PDB, "one replica: a budget would block every drain")
	var claim string
	for _, v := range m.Deployment.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	assert.Equal(t, m.PVC.Name, claim)
	assert.NotContains(t, m.Notes, "no database URL")
}

func TestChart_SSHKeyComesFromASecretFile(t *testing.T) {
	m := mustRender(t, "ssh: {existingSecret: opsbot-ssh, knownHosts: '10.0.0.11 ssh-ed25519 AAAAC3Nza'}\n")
	c := container(t, m)
	assert.Equal(t, "/var/run/secrets/opsbot/ssh-key", envVar(t, c, "OPSBOT_SSH_KEY").Value)
	assert.Equal(t, "/etc/opsbot/known_hosts", envVar(t, c, "OPSBOT_SSH_KNOWN_HOSTS").Value)
	assert.Equal(t, "10.0.0.11 ssh-ed25519 AAAAC3Nza", strings.TrimSpace(m.ConfigMap.Data["known_hosts"]))
	var secretVol *corev1.SecretVolumeSource
	for _, v := range m.Deployment.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secretVol = v.Secret
		}
	}
	require.NotNil(t, secretVol)
	assert.Equal(t, "opsbot-ssh", secretVol.SecretName)
	assert.EqualValues(t, 0o440, *secretVol.DefaultMode, "readable by fsGroup 65532, nobody else")

	none := container(t, mustRender(t, ``))
	assert.False(t, hasEnv(none, "OPSBOT_SSH_KEY"))
}

func TestChart_ShutdownGraceFitsThePodsGracePeriod(t *testing.T) {
	m := mustRender(t, ``)
	c := container(t, m)
	pod := m.Deployment.Spec.Template.Spec
	require.NotNil(t, c.Lifecycle, "a preStop delay")
	require.NotNil(t, c.Lifecycle.PreStop)
	require.NotNil(t, c.Lifecycle.PreStop.Sleep, "the sleep action: the image has no shell to run sleep with")
	preStop := c.Lifecycle.PreStop.Sleep.Seconds
	assert.EqualValues(t, 5, preStop)
	grace, err := time.ParseDuration(envVar(t, c, "OPSBOT_SHUTDOWN_GRACE").Value)
	require.NoError(t, err)
	assert.Equal(t, 20*time.Second, grace, "the bot's default, as systemd and the container docs have it")
	// serve needs grace + 10 s after SIGTERM (cmd/opsbot: shutdownTail);
	// the kubelet sends SIGTERM after the preStop sleep and SIGKILL at the
	// end of the grace period.
	worst := time.Duration(preStop)*time.Second + grace + 10*time.Second
	assert.Equal(t, worst+5*time.Second, time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second, "5 s of margin before SIGKILL")
	assert.Equal(t, "1m", envVar(t, c, "OPSBOT_APPROVAL_LEASE").Value)

	c = container(t, mustRender(t, "terminationGracePeriodSeconds: 120\napprovalLease: 30s\n"))
	assert.Equal(t, "100s", envVar(t, c, "OPSBOT_SHUTDOWN_GRACE").Value)
	assert.Equal(t, "30s", envVar(t, c, "OPSBOT_APPROVAL_LEASE").Value)

	c = container(t, mustRender(t, "preStopSleepSeconds: 0\n"))
	assert.Nil(t, c.Lifecycle, "0 turns the delay off")
	assert.Equal(t, "25s", envVar(t, c, "OPSBOT_SHUTDOWN_GRACE").Value)

	_, err = render(t, "terminationGracePeriodSeconds: 15\n")
	require.Error(t, err, "no room for the shutdown")
	assert.Contains(t, err.Error(), "must be at least preStopSleepSeconds (5) + 16")
}

// The NOTES a team reads after helm install: the commands to register (the
// same as the Slack manifest's), https URLs when the Ingress has TLS, and
// the warnings for settings that install but do not work.
func TestChart_NotesListTheCommandsAndWarn(t *testing.T) {
	var manifest struct {
		Features struct {
			SlashCommands []struct {
				Command string `json:"command"`
			} `json:"slash_commands"`
		} `json:"features"`
	}
	b, err := os.ReadFile(filepath.Join("..", "slack", "manifest.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &manifest))
	require.GreaterOrEqual(t, len(manifest.Features.SlashCommands), 6)
	notes := mustRender(t, ``).Notes
	for _, c := range manifest.Features.SlashCommands {
		assert.Regexp(t, `(?m)^  `+regexp.QuoteMeta(c.Command)+` `, notes, "NOTES lists %s", c.Command)
	}
	// The commands that take a subnet or an inventory group say so.
	for _, c := range []string{"/portcheck", "/scan"} {
		assert.Regexp(t, `(?m)^  `+regexp.QuoteMeta(c)+` .*a subnet \(10\.0\.0\.0/24\) or an inventory group$`, notes, "NOTES: %s takes subnets and groups", c)
	}

	tls := mustRender(t, "ingress: {enabled: true, hosts: [bot.example.org], tls: [{secretName: t, hosts: [bot.example.org]}]}\n").Notes
	assert.Contains(t, tls, "https://bot.example.org/slack/commands")
	assert.NotContains(t, tls, "has no TLS")
	plain := mustRender(t, "ingress: {enabled: true, hosts: [bot.example.org]}\n").Notes
	assert.Contains(t, plain, "WARNING: the Ingress has no TLS")

	ssh := mustRender(t, "ssh: {existingSecret: opsbot-ssh}\n").Notes
	assert.Contains(t, ssh, "WARNING: ssh.existingSecret is set but ssh.knownHosts is empty")
	assert.NotContains(t, mustRender(t, "ssh: {existingSecret: opsbot-ssh, knownHosts: 'h ssh-ed25519 AAAA'}\n").Notes, "ssh.knownHosts is empty")

	mm := mustRender(t, "config: {mattermostURL: 'https://chat.example.com'}\ningress: {enabled: true, hosts: [bot.example.org]}\n").Notes
	assert.Contains(t, mm, "WARNING: Mattermost without config.publicURL")
	assert.Contains(t, mm, "config.publicURL=https://bot.example.org")
	assert.NotContains(t, mustRender(t, "config: {mattermostURL: 'https://chat.example.com', publicURL: 'https://bot.example.org'}\n").Notes, "without config.publicURL")

	// Mattermost commands: registered by the bot, the NOTES say how.
	assert.Contains(t, notes, "-- /usr/local/bin/opsbot mattermost register --team NAME [--single]")
	reg := mustRender(t, "config: {mattermostURL: 'https://chat.example.com', mattermostRegister: 'ops,infra:single'}\n")
	assert.Contains(t, reg.Notes, "registered at start in ops,infra:single")
	assert.Contains(t, reg.Notes, "WARNING: config.mattermostRegister needs config.publicURL")
	env := map[string]string{}
	for _, e := range reg.Deployment.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	assert.Equal(t, "ops,infra:single", env["OPSBOT_MATTERMOST_REGISTER"])
}

// deploy/README.md's install command gives the Ingress TLS, and the URLs
// it tells a team to paste are https.
func TestChart_RecipeInTheDocsServesHTTPS(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, "helm install opsbot deploy/helm/opsbot")
	require.Positive(t, i)
	cmd := doc[i : i+strings.Index(doc[i:], "```")]
	assert.Contains(t, cmd, "ingress.tls[0].secretName=")
	assert.Contains(t, cmd, "ingress.tls[0].hosts[0]=opsbot.example.com")
	assert.NotContains(t, doc, "http://opsbot.example.com")
}

// `make chart-package` stamps the git version into the chart's appVersion
// (helm package --app-version): the pods then run the image of that tag,
// labelled with it.
func TestChart_AppVersionStampedAtPackagingPicksTheImage(t *testing.T) {
	ch := loadChart(t)
	ch.Metadata.AppVersion = "v1.4.0"
	m, err := renderChart(t, ch, ``)
	require.NoError(t, err)
	assert.Equal(t, "opsbot:v1.4.0", container(t, m).Image)
	assert.Equal(t, "v1.4.0", m.Deployment.Labels["app.kubernetes.io/version"])
	assert.Contains(t, m.Notes, "opsbot v1.4.0 is deployed")
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	require.NoError(t, err)
	assert.Contains(t, string(mk), "helm package opsbot --app-version '$(VERSION)'")
}
