//! What the Graph driver's test files share: a Company Email config for the mocked Microsoft 365 tenant, and its transport.

use mailroom_core::config::{CompanyEmail, ServiceConfig};
use mailroom_graph::GraphTransport;
use mailroom_testkit::MockMicrosoft365;

/// The Company Email config for `mock`'s tenant with `auth` ("application" or "delegated").
pub fn config(mock: &MockMicrosoft365, auth: &str) -> CompanyEmail {
    let tenant = mock.tenant();
    let credentials = match auth {
        "application" => "client_secret_env = \"MS_SECRET\"".to_owned(),
        _ => "refresh_token_env = \"MS_REFRESH\"".to_owned(),
    };
    let text = format!(
        "service = \"email_services\"\nemail_address = \"{}\"\ndisplay_name = \"Company ERP\"\n[email_services]\nprovider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\n{credentials}\nauth = \"{auth}\"\nauthority = \"{uri}\"\napi_base = \"{uri}\"\ntimeout_secs = 5\n",
        tenant.mailbox,
        tenant.tenant,
        tenant.client_id,
        uri = mock.uri()
    );
    let secret = tenant.client_secret.clone();
    let refresh = tenant.refresh_token.clone();
    CompanyEmail::from_toml(&text, &move |name| match name {
        "MS_SECRET" => secret.clone(),
        "MS_REFRESH" => Some(refresh.clone()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
    .config
}

/// The Graph transport for `config`.
pub fn transport(config: &CompanyEmail) -> GraphTransport {
    let ServiceConfig::Graph(graph) = &config.service else { panic!("not graph") };
    GraphTransport::new(config.sender.clone(), graph).unwrap()
}
