//! Who is asking, as real clients see it: certificates, ServiceAccount tokens, anonymous
//! requests and impersonation, RBAC with the bootstrap roles and aggregation, escalation
//! checks, the review APIs, and the exact words of 401 and 403.

use std::process::Output;

use devcluster::testkit::Cluster;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A cluster with namespace `r2`, where `bob` (group `team`) gets `view` and nothing else.
fn with_bob() -> Cluster {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "r2"]);
    c.ok(&["create", "rolebinding", "bob-view", "-n", "r2", "--clusterrole=view", "--user=bob"]);
    c
}

#[test]
fn the_admin_kubeconfig_is_a_client_certificate_in_system_masters() {
    let c = Cluster::start();
    let who = c.ok(&["auth", "whoami"]);
    assert!(who.contains("kubernetes-admin") && who.contains("[system:masters system:authenticated]"), "{who}");
    assert!(who.contains("X509SHA256="), "{who}");
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).expect("kubeconfig");
    assert!(kubeconfig.contains("server: https://127.0.0.1:") && kubeconfig.contains("client-certificate-data"));
}

#[test]
fn a_denied_request_is_403_in_kube_apiservers_words() {
    let c = with_bob();
    let out = c.kubectl(&["--as", "bob", "get", "configmaps", "-n", "other"]);
    assert_eq!(
        stderr(&out).trim(),
        r#"Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "other""#
    );
    c.ok(&["create", "namespace", "other"]);
    let out = c.kubectl(&["--as", "bob", "get", "namespace", "other"]);
    assert!(
        stderr(&out).contains(r#"namespaces "other" is forbidden: User "bob" cannot get resource "namespaces" in API group "" in the namespace "other""#),
        "{}",
        stderr(&out)
    );
    let out = c.kubectl(&["--as", "bob", "get", "namespaces"]);
    assert!(stderr(&out).contains("at the cluster scope"), "{}", stderr(&out));
    let out = c.kubectl(&["--as", "bob", "create", "configmap", "x", "-n", "r2"]);
    assert!(stderr(&out).contains(r#"User "bob" cannot create resource "configmaps""#), "{}", stderr(&out));
}

#[test]
fn a_rolebinding_to_view_lets_a_user_read_in_its_namespace_only() {
    let c = with_bob();
    c.ok(&["create", "configmap", "data", "-n", "r2"]);
    assert!(c.ok(&["--as", "bob", "get", "configmaps", "-n", "r2"]).contains("data"));
    assert_eq!(c.ok(&["auth", "can-i", "list", "pods", "-n", "r2", "--as", "bob"]).trim(), "yes");
    let no = c.kubectl(&["auth", "can-i", "create", "pods", "-n", "r2", "--as", "bob"]);
    assert!(!no.status.success() && stdout(&no).trim() == "no", "{}", stdout(&no));
    let no = c.kubectl(&["auth", "can-i", "get", "secrets", "-n", "r2", "--as", "bob"]);
    assert_eq!(stdout(&no).trim(), "no", "view does not read secrets");
    let rules = c.ok(&["auth", "can-i", "--list", "-n", "r2", "--as", "bob"]);
    assert!(rules.contains("selfsubjectreviews.authentication.k8s.io") && rules.contains("configmaps"), "{rules}");
}

#[test]
fn a_cluster_role_labelled_aggregate_to_view_joins_view_edit_and_admin() {
    let c = with_bob();
    let no = c.kubectl(&["auth", "can-i", "get", "leases.coordination.k8s.io", "-n", "r2", "--as", "bob"]);
    assert_eq!(stdout(&no).trim(), "no", "view does not read leases");
    c.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: leases-view\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, list, watch]}\n",
    );
    for role in ["view", "edit", "admin"] {
        let rules = c.jsonpath(&["get", "clusterrole", role], "{.rules[*].resources}");
        assert!(rules.contains("leases"), "{role}: {rules}");
    }
    assert_eq!(c.ok(&["auth", "can-i", "get", "leases.coordination.k8s.io", "-n", "r2", "--as", "bob"]).trim(), "yes");
}

#[test]
fn impersonation_needs_the_impersonate_verb() {
    let c = with_bob();
    let carol = c.save_kubeconfig("carol", &c.server.kubeconfig_as("carol", &["devs"]));
    // Discovery goes first and is refused too: kubectl then says only "unknown", as against a
    // real cluster; a raw request shows the server's message.
    let out = c.kubectl_with(&carol, &["--as", "bob", "get", "configmaps", "-n", "r2"]);
    assert!(stderr(&out).contains("Error from server (Forbidden): unknown"), "{}", stderr(&out));
    let out = c.kubectl_with(&carol, &["--as", "bob", "get", "--raw", "/api/v1/namespaces/r2/configmaps"]);
    assert!(
        stderr(&out).contains(r#"users "bob" is forbidden: User "carol" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{}",
        stderr(&out)
    );
    c.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: impersonate-bob}\nrules:\n- {apiGroups: [\"\"], resources: [users], resourceNames: [bob], verbs: [impersonate]}\n",
    );
    c.ok(&["create", "clusterrolebinding", "carol-as-bob", "--clusterrole=impersonate-bob", "--user=carol"]);
    let out = c.kubectl_with(&carol, &["--as", "bob", "auth", "whoami"]);
    assert!(stdout(&out).contains("bob") && !stdout(&out).contains("carol"), "{}", stdout(&out));
    let out = c.kubectl_with(&carol, &["--as", "bob", "--as-group", "admins", "get", "--raw", "/api"]);
    assert!(stderr(&out).contains(r#"groups "admins" is forbidden"#), "{}", stderr(&out));
}

#[test]
fn service_account_tokens_authenticate_until_their_account_is_gone() {
    let c = with_bob();
    c.ok(&["create", "serviceaccount", "op", "-n", "r2"]);
    let token = c.ok(&["create", "token", "op", "-n", "r2", "--duration", "15m"]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_op = c.save_kubeconfig("op", &c.server.kubeconfig_with_token(&token));
    let who = stdout(&c.kubectl_with(&as_op, &["auth", "whoami"]));
    assert!(who.contains("system:serviceaccount:r2:op"), "{who}");
    assert!(who.contains("[system:serviceaccounts system:serviceaccounts:r2 system:authenticated]"), "{who}");
    let out = c.kubectl_with(&as_op, &["get", "configmaps", "-n", "r2"]);
    assert!(stderr(&out).contains(r#"User "system:serviceaccount:r2:op" cannot list"#), "{}", stderr(&out));
    c.ok(&["create", "rolebinding", "op-view", "-n", "r2", "--clusterrole=view", "--serviceaccount=r2:op"]);
    assert!(c.kubectl_with(&as_op, &["get", "configmaps", "-n", "r2"]).status.success());
    c.ok(&["delete", "serviceaccount", "op", "-n", "r2"]);
    let out = c.kubectl_with(&as_op, &["get", "configmaps", "-n", "r2"]);
    assert!(
        stderr(&out).contains("You must be logged in to the server"),
        "a deleted account's token: {}",
        stderr(&out)
    );
    let bad = c.save_kubeconfig("bad", &c.server.kubeconfig_with_token("not-a-token"));
    assert!(stderr(&c.kubectl_with(&bad, &["get", "ns"])).contains("Unauthorized"));
    let short = c.kubectl(&["create", "token", "default", "-n", "r2", "--duration", "5m"]);
    assert!(stderr(&short).contains("may not specify a duration less than 10 minutes"), "{}", stderr(&short));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_reach_only_version_and_health() {
    let c = Cluster::start();
    let anonymous = c.server.client_anonymous();
    let get = |path: &str| http::Request::get(path).body(Vec::new()).expect("a request");
    let version = anonymous.request_text(get("/version")).await.expect("/version is public");
    assert!(version.contains("v1.33"), "{version}");
    anonymous.request_text(get("/healthz")).await.expect("/healthz is public");
    let err = anonymous.request_text(get("/api")).await.expect_err("discovery is not");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403 && s.message == r#"forbidden: User "system:anonymous" cannot get path "/api""#),
        "{err}"
    );
}

#[test]
fn nobody_grants_more_than_they_hold() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "r2"]);
    c.ok(&["create", "rolebinding", "bob-admin", "-n", "r2", "--clusterrole=admin", "--user=bob"]);
    // Binding a role one holds: allowed; cluster-admin: refused, in the real words.
    c.ok(&["--as", "bob", "create", "rolebinding", "carol-view", "-n", "r2", "--clusterrole=view", "--user=carol"]);
    let out = c.kubectl(&[
        "--as",
        "bob",
        "create",
        "rolebinding",
        "me-root",
        "-n",
        "r2",
        "--clusterrole=cluster-admin",
        "--user=bob",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains(r#"rolebindings.rbac.authorization.k8s.io "me-root" is forbidden: user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#),
        "{err}"
    );
    // A Role with what admin has is fine; one with more is not.
    c.ok(&["--as", "bob", "create", "role", "reader", "-n", "r2", "--verb=get", "--resource=secrets"]);
    let out = c.kubectl(&[
        "--as",
        "bob",
        "create",
        "role",
        "quotas",
        "-n",
        "r2",
        "--verb=update",
        "--resource=resourcequotas",
    ]);
    assert!(stderr(&out).contains("is attempting to grant RBAC permissions not currently held"), "{}", stderr(&out));
    // Nor in another namespace, nor cluster-wide.
    c.ok(&["create", "namespace", "r3"]);
    let out = c.kubectl(&["--as", "bob", "create", "rolebinding", "x", "-n", "r3", "--clusterrole=view", "--user=bob"]);
    assert!(stderr(&out).contains(r#"User "bob" cannot create resource "rolebindings""#), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_reviews_and_a_service_account_token() {
    let c = with_bob();
    let admin = c.server.client();
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("bob".into()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("r2".into()),
                verb: Some("list".into()),
                resource: Some("pods".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answered =
        Api::<SubjectAccessReview>::all(admin.clone()).create(&PostParams::default(), &sar).await.expect("SAR");
    let status = answered.status.expect("a status");
    assert!(status.allowed, "{status:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some(r#"RBAC: allowed by RoleBinding "bob-view/r2" of ClusterRole "view" to User "bob""#)
    );

    c.ok(&["create", "serviceaccount", "op", "-n", "r2"]);
    let token = c.server.token_for("r2", "op").expect("a token");
    let review =
        TokenReview { spec: TokenReviewSpec { token: Some(token.clone()), audiences: None }, ..Default::default() };
    let reviewed = Api::<TokenReview>::all(admin).create(&PostParams::default(), &review).await.expect("TokenReview");
    let user = reviewed.status.and_then(|s| s.user).expect("authenticated");
    assert_eq!(user.username.as_deref(), Some("system:serviceaccount:r2:op"));

    let as_op = c.server.client_with_token(&token);
    let cms: Api<ConfigMap> = Api::namespaced(as_op, "r2");
    let err = cms.list(&ListParams::default()).await.expect_err("no access yet");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 403), "{err}");
    c.ok(&["create", "rolebinding", "op-view", "-n", "r2", "--clusterrole=view", "--serviceaccount=r2:op"]);
    cms.list(&ListParams::default()).await.expect("view lets it list");
}
