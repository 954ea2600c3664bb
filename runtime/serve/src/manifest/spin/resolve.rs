//! A Spin manifest mapped onto Mayfly's app: its HTTP triggers become
//! routes (a private one none: its component is reached through
//! `http://ID.spin.internal`), its components Mayfly components with the
//! same grants, its variables resolved once, at load, from
//! `SPIN_VARIABLE_<NAME>` or their defaults. Every field Mayfly does not
//! serve is refused by name, never ignored; errors are `(field, message)`
//! as in the rest of the manifest module.

use std::collections::BTreeMap;
use std::path::Path;

use mayfly_build::BuildStep;
use mayfly_host_api::outbound::HostPattern;
use mayfly_host_api::state::check_variable_name;
use mayfly_sandbox::Grants;
use mayfly_sandbox::grants::{self, FileGrant, FileGrantError, FilesMode};

use super::file::{
    Build, Commands, Component, ComponentRef, FileMount, Route, Source as SpinSource, SpinManifest,
    Trigger,
};
use crate::limits::Limits;
use crate::manifest::resolve::{EnvLookup, app_name_from_stem, check_component_name, check_stores};
use crate::manifest::spec::{AppKind, AppSpec, ComponentSpec, LimitFields, Source};
use crate::router::Pattern;

type Resolved<T> = Result<T, (String, String)>;

fn unsupported(field: String, what: &str) -> (String, String) {
    (
        field,
        format!("{what}; Mayfly does not serve it (remove the field)"),
    )
}

/// Maps `file`, read from a manifest in `base`, onto an app.
pub(in crate::manifest) fn resolve(
    mut file: SpinManifest,
    base: &Path,
    env: &EnvLookup<'_>,
) -> Resolved<AppSpec> {
    if file.spin_manifest_version != 2 {
        return Err((
            "spin_manifest_version".into(),
            format!(
                "version {} is not served; Mayfly reads Spin manifests of version 2",
                file.spin_manifest_version
            ),
        ));
    }
    check_application(&file)?;
    let variables = resolve_variables(&file, env)?;
    if let Some(kind) = file.trigger.other.keys().next() {
        return Err(unsupported(
            format!("trigger.{kind}"),
            &format!("`{kind}` triggers are not HTTP"),
        ));
    }
    let triggers = std::mem::take(&mut file.trigger.http);
    // Inline components join the others under the id Spin gives them.
    let mut routes_by_id: Vec<(Option<Pattern>, String)> = Vec::new();
    for (i, trigger) in triggers.into_iter().enumerate() {
        let field = format!("trigger.http[{i}]");
        let (route, id) = resolve_trigger(trigger, &field, i, &mut file.component)?;
        routes_by_id.push((route, id));
    }
    let ids: Vec<String> = file.component.keys().cloned().collect();
    let mut components = Vec::with_capacity(file.component.len());
    for (id, component) in &file.component {
        let field = format!("component.{id}");
        check_component_name(id).map_err(|message| (field.clone(), message))?;
        components.push(resolve_component(
            id, component, &field, base, &variables, &ids,
        )?);
    }
    let mut routes = Vec::new();
    for (i, (route, id)) in routes_by_id.into_iter().enumerate() {
        let Some(target) = components.iter().position(|c| c.name == id) else {
            return Err((
                format!("trigger.http[{i}].component"),
                format!("no component with id `{id}` (declared: {})", ids.join(", ")),
            ));
        };
        if let Some(pattern) = route {
            if routes.iter().any(|(known, _)| *known == pattern) {
                return Err((
                    format!("trigger.http[{i}].route"),
                    format!("route `{pattern}` is ambiguous: another trigger has the same route"),
                ));
            }
            routes.push((pattern, target));
        }
    }
    if routes.is_empty() {
        return Err((
            "trigger.http".into(),
            "the app has no public HTTP routes; add a `[[trigger.http]]` with a `route` and a \
             `component`"
                .into(),
        ));
    }
    Ok(AppSpec {
        name: app_name_from_stem(&file.application.name),
        kind: AppKind::Spin,
        components,
        routes,
    })
}

/// `[application]`: metadata is read, `[application.trigger.http]` may
/// only say what Spin 3 and later allow (`base = "/"`).
fn check_application(file: &SpinManifest) -> Resolved<()> {
    for (kind, settings) in &file.application.trigger {
        let field = format!("application.trigger.{kind}");
        if kind != "http" {
            return Err(unsupported(
                field,
                &format!("`{kind}` triggers are not HTTP"),
            ));
        }
        for (key, value) in settings {
            match (key.as_str(), value.as_str()) {
                ("base", Some("/")) => {}
                ("base", _) => {
                    return Err((
                        format!("{field}.base"),
                        "an app-wide base path is not served (Spin 3 removed it too); \
                         prepend it to each trigger's route"
                            .into(),
                    ));
                }
                _ => return Err(unsupported(format!("{field}.{key}"), "an unknown setting")),
            }
        }
    }
    Ok(())
}

/// The app's variables with their values: from `SPIN_VARIABLE_<NAME>`,
/// else the default. A required one without a value stops the load.
fn resolve_variables(
    file: &SpinManifest,
    env: &EnvLookup<'_>,
) -> Resolved<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (name, variable) in &file.variables {
        let field = format!("variables.{name}");
        check_variable_name(name).map_err(|message| (field.clone(), message))?;
        if variable.required == variable.default.is_some() {
            return Err((
                field,
                "a variable is either `required = true` or has a `default`, not both or neither"
                    .into(),
            ));
        }
        let from_env = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        let value = match (env(&from_env), &variable.default) {
            (Some(value), _) => value,
            (None, Some(default)) => default.clone(),
            (None, None) => {
                return Err((
                    field,
                    format!("the variable is required and has no value: set {from_env}"),
                ));
            }
        };
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// A trigger's route (`None` for a private one) and the id of its
/// component, an inline one added to `components`.
fn resolve_trigger(
    trigger: Trigger,
    field: &str,
    index: usize,
    components: &mut BTreeMap<String, Component>,
) -> Resolved<(Option<Pattern>, String)> {
    if trigger.static_response.is_some() {
        return Err(unsupported(
            format!("{field}.static_response"),
            "a static response is answered without a component",
        ));
    }
    for (name, present) in [
        ("components", trigger.components.is_some()),
        ("dependencies", trigger.dependencies.is_some()),
    ] {
        if present {
            return Err(unsupported(
                format!("{field}.{name}"),
                "composing components per trigger (middleware)",
            ));
        }
    }
    if let Some(executor) = &trigger.executor {
        match executor.kind.as_str() {
            "http" | "spin" | "wasip3-unstable"
                if executor.argv.is_none() && executor.entrypoint.is_none() => {}
            "wagi" => {
                return Err(unsupported(
                    format!("{field}.executor"),
                    "WAGI (CGI-style modules) is deprecated in Spin",
                ));
            }
            _ => {
                return Err((
                    format!("{field}.executor"),
                    format!(
                        "unknown executor `{}`; an HTTP component's executor is `http`",
                        executor.kind
                    ),
                ));
            }
        }
    }
    let id = match trigger.component {
        Some(ComponentRef::Id(id)) => id,
        Some(ComponentRef::Inline(component)) => {
            let id = match &trigger.id {
                Some(id) if !components.contains_key(&format!("{id}-component")) => {
                    format!("{id}-component")
                }
                _ => format!("inline-component{index}"),
            };
            components.insert(id.clone(), *component);
            id
        }
        None => {
            return Err((
                format!("{field}.component"),
                "a trigger names its `component`".into(),
            ));
        }
    };
    let route = match trigger.route {
        Some(Route::Path(route)) => {
            Some(spin_route(&route).map_err(|message| (format!("{field}.route"), message))?)
        }
        Some(Route::Private { private: true }) => None,
        Some(Route::Private { private: false }) => {
            return Err((
                format!("{field}.route"),
                "a route is a path, or `{ private = true }`".into(),
            ));
        }
        None => return Err((format!("{field}.route"), "a trigger has a `route`".into())),
    };
    Ok((route, id))
}

/// A Spin route as Mayfly's pattern: a leading `/` added, one trailing `/`
/// dropped, `/...` (or `/*`) a wildcard; `:name` segments are refused.
fn spin_route(route: &str) -> Result<Pattern, String> {
    let mut route = if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    };
    if let Some(prefix) = route.strip_suffix("/*") {
        route = format!("{prefix}/...");
    }
    if route.len() > 1 && route.ends_with('/') {
        route.pop();
    }
    if route.split('/').any(|segment| segment.starts_with(':')) {
        return Err(format!(
            "`{route}`: named segments (`:name`) are not served; use a wildcard (`/.../...`) \
             and read the path"
        ));
    }
    Pattern::parse(&route)
}

/// One component, its grants made through the same rules as Mayfly's
/// own manifest's.
fn resolve_component(
    id: &str,
    component: &Component,
    field: &str,
    base: &Path,
    variables: &BTreeMap<String, String>,
    ids: &[String],
) -> Resolved<ComponentSpec> {
    let refused: [(&str, bool, &str); 8] = [
        (
            "exclude_files",
            !component.exclude_files.is_empty(),
            "excluding files from `files`",
        ),
        (
            "allowed_http_hosts",
            component.allowed_http_hosts.is_some(),
            "the old form of `allowed_outbound_hosts` (rewrite it as `allowed_outbound_hosts`)",
        ),
        (
            "sqlite_databases",
            !component.sqlite_databases.is_empty(),
            "SQLite databases",
        ),
        (
            "ai_models",
            !component.ai_models.is_empty(),
            "AI models (LLM inference)",
        ),
        (
            "dependencies",
            component.dependencies.is_some(),
            "composing dependencies into a component",
        ),
        (
            "dependencies_inherit_configuration",
            component.dependencies_inherit_configuration.is_some(),
            "composing dependencies into a component",
        ),
        (
            "targets",
            component.targets.is_some(),
            "target environments",
        ),
        ("profile", component.profile.is_some(), "build profiles"),
    ];
    if let Some((name, _, what)) = refused.iter().find(|(_, present, _)| *present) {
        return Err(unsupported(format!("{field}.{name}"), what));
    }
    let source = match &component.source {
        SpinSource::Path(path) => base.join(path),
        SpinSource::Url { url, digest } => {
            return Err((
                format!("{field}.source"),
                format!(
                    "Mayfly does not download components: fetch {url}, check it against \
                     {digest}, and give its path"
                ),
            ));
        }
        SpinSource::Registry {
            package, version, ..
        } => {
            return Err((
                format!("{field}.source"),
                format!(
                    "Mayfly does not pull components from a registry: get {package}@{version} \
                     (`spin registry pull` or `wkg get`) and give its path"
                ),
            ));
        }
    };
    let mut grants = Grants::default();
    for (name, value) in &component.environment {
        grants.env.push(
            grants::env_var(name, value).map_err(|m| (format!("{field}.environment.{name}"), m))?,
        );
    }
    for (i, mount) in component.files.iter().enumerate() {
        let at = format!("{field}.files[{i}]");
        let (host, guest) = match mount {
            FileMount::Placed {
                source,
                destination,
            } => (base.join(source), destination.clone()),
            FileMount::Pattern(path) if !path.contains(['*', '?', '[', '{']) => (
                base.join(path),
                format!("/{}", path.trim_start_matches("./")),
            ),
            FileMount::Pattern(pattern) => {
                return Err((
                    at,
                    format!(
                        "`{pattern}`: globs are not served; mount a directory with \
                         `{{ source = \"DIR\", destination = \"/DIR\" }}`"
                    ),
                ));
            }
        };
        if host.is_file() {
            return Err((
                at,
                format!(
                    "{} is a file: Mayfly grants directories; mount the directory it is in",
                    host.display()
                ),
            ));
        }
        let granted =
            FileGrant::new(host, guest, FilesMode::ReadOnly).map_err(|err| match err {
                FileGrantError::Host { .. } => (at.clone(), err.to_string()),
                FileGrantError::Guest(message) => (at.clone(), message),
            })?;
        grants.add_dir(granted).map_err(|m| (at.clone(), m))?;
    }
    let mut outbound = Vec::new();
    for (i, entry) in component.allowed_outbound_hosts.iter().enumerate() {
        let at = format!("{field}.allowed_outbound_hosts[{i}]");
        let filled = fill_template(entry, variables).map_err(|m| (at.clone(), m))?;
        let patterns = outbound_patterns(&filled, ids).map_err(|message| {
            // A variable may be a secret: what it filled in is never shown.
            if filled == *entry {
                (at.clone(), message)
            } else {
                (
                    at.clone(),
                    format!("`{entry}`, with its variables filled in, is not a host Mayfly serves"),
                )
            }
        })?;
        outbound.extend(patterns);
    }
    grants.outbound = outbound.into();
    grants.stores = check_stores(&component.key_value_stores, field)?;
    for (name, template) in &component.variables {
        let at = format!("{field}.variables.{name}");
        check_variable_name(name).map_err(|m| (at.clone(), m))?;
        let value = fill_template(template, variables).map_err(|m| (at, m))?;
        grants.config.push((name.clone(), value));
    }
    let build = component
        .build
        .as_ref()
        .map(|build| resolve_build(id, build, field, base, &source))
        .transpose()?;
    Ok(ComponentSpec {
        name: id.to_owned(),
        field: format!("{field}.source"),
        source: Source::File(source),
        limits: Limits::default(),
        limit_fields: LimitFields::default(),
        grants,
        build,
    })
}

/// `text` with each `{{ name }}` replaced by the app variable's value.
fn fill_template(text: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        filled.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{text}` opens `{{{{` without closing it"))?;
        let name = after[..end].trim();
        let value = variables.get(name).ok_or_else(|| {
            format!("`{text}` names `{name}`, which is not in the app's `[variables]`")
        })?;
        filled.push_str(value);
        rest = &after[end + 2..];
    }
    filled.push_str(rest);
    Ok(filled)
}

/// Mayfly's patterns for one of Spin's `allowed_outbound_hosts` entries:
/// `*://host` is `http` and `https`; `http://*.spin.internal` is every
/// component of the app, one by one (a wildcard never reaches an app's
/// components); an entry a variable left empty allows nothing, as in Spin.
fn outbound_patterns(entry: &str, ids: &[String]) -> Result<Vec<HostPattern>, String> {
    if matches!(entry, "" | "http://" | "https://") {
        return Ok(Vec::new());
    }
    let entry = entry.strip_suffix('/').unwrap_or(entry);
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(format!("`{entry}` must be `scheme://host[:port]`"));
    };
    let schemes: &[&str] = match scheme {
        "*" => &["http", "https"],
        "http" => &["http"],
        "https" => &["https"],
        other => {
            return Err(format!(
                "`{entry}`: `{other}` connections are not served; Mayfly's outbound hosts are \
                 `http` and `https`"
            ));
        }
    };
    if rest.starts_with("self") && matches!(rest, "self" | "self.alt") {
        return Err(format!(
            "`{entry}`: relative requests to the app itself are not served; call a \
             component as `http://ID.spin.internal`"
        ));
    }
    if rest.contains("..") {
        return Err(format!(
            "`{entry}`: port ranges are not served; list each port"
        ));
    }
    let hosts: Vec<String> = match rest.split_once(':').map_or(rest, |(host, _)| host) {
        "*.spin.internal" => ids.iter().map(|id| format!("{id}.spin.internal")).collect(),
        _ => vec![rest.to_string()],
    };
    let mut patterns = Vec::new();
    for scheme in schemes {
        for host in &hosts {
            patterns.push(HostPattern::parse(&format!("{scheme}://{host}"))?);
        }
    }
    Ok(patterns)
}

/// A component's `build`: several commands run as one, stopping at the
/// first failure.
fn resolve_build(
    id: &str,
    build: &Build,
    field: &str,
    base: &Path,
    output: &Path,
) -> Resolved<BuildStep> {
    let command = match &build.command {
        Commands::One(command) => command.clone(),
        Commands::Many(commands) => commands.join(" && "),
    };
    if command.trim().is_empty() {
        return Err((
            format!("{field}.build.command"),
            "the build command is empty".into(),
        ));
    }
    for (i, glob) in build.watch.iter().enumerate() {
        mayfly_build::sources::check(glob).map_err(|m| (format!("{field}.build.watch[{i}]"), m))?;
    }
    Ok(BuildStep {
        component: id.to_owned(),
        command,
        workdir: build
            .workdir
            .as_ref()
            .map_or_else(|| base.to_path_buf(), |dir| base.join(dir)),
        watch: build.watch.clone(),
        output: output.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_spin_variable_env_then_their_default() {
        let file: SpinManifest = toml::from_str(
            r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
region = { default = "eu" }
api_key = { required = true, secret = true }
"#,
        )
        .unwrap();
        let env = |name: &str| (name == "SPIN_VARIABLE_API_KEY").then(|| "k-123".to_string());
        let values = resolve_variables(&file, &env).unwrap();
        assert_eq!(values["region"], "eu");
        assert_eq!(values["api_key"], "k-123");
        let env = |name: &str| (name == "SPIN_VARIABLE_REGION").then(|| "us".to_string());
        let err = resolve_variables(&file, &env).unwrap_err();
        assert_eq!(
            err,
            (
                "variables.api_key".to_string(),
                "the variable is required and has no value: set SPIN_VARIABLE_API_KEY".to_string()
            )
        );
    }

    #[test]
    fn spin_routes_become_mayfly_patterns() {
        for (route, pattern) in [
            ("/...", "/..."),
            ("/api/...", "/api/..."),
            ("/api/*", "/api/..."),
            ("hello", "/hello"),
            ("/hello/", "/hello"),
            ("/", "/"),
        ] {
            assert_eq!(spin_route(route).unwrap().to_string(), pattern, "{route}");
        }
        assert_eq!(
            spin_route("/users/:id").unwrap_err(),
            "`/users/:id`: named segments (`:name`) are not served; use a wildcard \
             (`/.../...`) and read the path"
        );
    }

    #[test]
    fn templates_take_the_apps_variables() {
        let variables = BTreeMap::from([("host".to_string(), "api.example.com".to_string())]);
        assert_eq!(
            fill_template("https://{{ host }}:8443", &variables).unwrap(),
            "https://api.example.com:8443"
        );
        assert_eq!(
            fill_template("{{ nope }}", &variables).unwrap_err(),
            "`{{ nope }}` names `nope`, which is not in the app's `[variables]`"
        );
    }

    #[test]
    fn outbound_hosts_in_spins_syntax() {
        let ids = ["api".to_string(), "web".to_string()];
        let shown = |entry: &str| -> Vec<String> {
            outbound_patterns(entry, &ids)
                .unwrap()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect()
        };
        assert_eq!(shown("*://example.com").len(), 2);
        assert_eq!(shown("http://*.spin.internal").len(), 2);
        assert!(shown("https://").is_empty());
        assert_eq!(
            outbound_patterns("redis://cache:6379", &ids).unwrap_err(),
            "`redis://cache:6379`: `redis` connections are not served; Mayfly's outbound hosts \
             are `http` and `https`"
        );
    }
}
