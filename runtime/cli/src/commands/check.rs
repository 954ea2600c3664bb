//! `mayfly check`: validate an app and report what each component can reach.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use mayfly_sandbox::units::{format_duration, format_size};
use mayfly_serve::component::LoadedComponent;
use mayfly_serve::loader::Loader;
use mayfly_serve::manifest::AppSpec;
use mayfly_serve::metrics::Metrics;

use super::shared::{self, CacheArgs, EngineArgs};

/// Validate an app without serving it, and print what each component can
/// reach
///
/// Reads the manifest, then compiles, links and pre-instantiates every
/// component exactly as `mayfly serve` would. For each component it prints
/// its routes, its grants (directories and modes, environment variable
/// names, outbound hosts), its limits and the interfaces it imports. Every
/// problem found is reported; the exit status is non-zero if there is any.
#[derive(Args)]
pub struct Check {
    /// The app: a manifest (`app.toml`) or a single component (`hello.wasm`)
    #[arg(value_name = "APP")]
    app: PathBuf,

    #[command(flatten)]
    engine: EngineArgs,

    #[command(flatten)]
    cache: CacheArgs,
}

impl Check {
    pub fn execute(self) -> Result<()> {
        let spec = shared::app_spec(Some(&self.app))?;
        let settings = spec.engine_settings(self.engine.settings());
        let server = format!(
            "Checked against a server of {} instances, with memory slots of {}",
            settings.max_instances,
            format_size(u64::try_from(settings.largest_memory()).unwrap_or(u64::MAX))
        );
        let loader = Loader::new(
            settings,
            self.cache.cache()?,
            None,
            Arc::new(Metrics::default()),
        )?;

        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "App `{}` ({}): {} components, {} routes",
            spec.name,
            self.app.display(),
            spec.components.len(),
            spec.routes.len()
        )?;
        writeln!(out, "{server} (--max-instances).")?;
        let mut problems = 0;
        for (index, component) in spec.components.iter().enumerate() {
            writeln!(out)?;
            let routes: Vec<String> = spec
                .routes
                .iter()
                .filter(|(_, target)| *target == index)
                .map(|(pattern, _)| pattern.to_string())
                .collect();
            match loader.load(component, None) {
                Ok(loaded) => report(&mut out, &spec, &loaded, &routes)?,
                Err(err) => {
                    problems += 1;
                    writeln!(out, "component `{}`: PROBLEM", component.name)?;
                    writeln!(out, "  {err}")?;
                }
            }
        }
        out.flush()?;
        drop(out);
        if problems > 0 {
            bail!(
                "{problems} of {} components of app `{}` cannot be loaded (see above)",
                spec.components.len(),
                spec.name
            );
        }
        println!("\nOK: every component loads, and can reach only what is listed above.");
        Ok(())
    }
}

fn report(
    out: &mut impl std::io::Write,
    spec: &AppSpec,
    component: &LoadedComponent,
    routes: &[String],
) -> Result<()> {
    let source = spec
        .components
        .iter()
        .find(|c| c.name == component.name())
        .map(|c| format!("{} = {}", c.field, c.source))
        .unwrap_or_default();
    writeln!(out, "component `{}` ({source})", component.name())?;
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    writeln!(out, "  routes:    {}", list(routes.to_vec()))?;

    let grants = component.grants();
    if grants.files.is_empty() {
        writeln!(out, "  files:     none")?;
    }
    for (i, grant) in grants.files.iter().enumerate() {
        let mode = grant.mode.name();
        let label = if i == 0 { "files:" } else { "" };
        writeln!(
            out,
            "  {label:<10} {} <- {} ({mode})",
            grant.guest,
            grant.host.display()
        )?;
    }
    let env = grants.env.iter().map(|(name, _)| name.clone()).collect();
    writeln!(out, "  env:       {}", list(env))?;
    let outbound = grants.outbound.iter().map(ToString::to_string).collect();
    writeln!(out, "  outbound:  {}", list(outbound))?;
    writeln!(out, "  sockets:   none (wasi:sockets is always denied)")?;
    writeln!(out, "  stores:    {}", list(grants.stores.clone()))?;
    let config = grants.config.iter().map(|(key, _)| key.clone()).collect();
    writeln!(out, "  config:    {}", list(config))?;

    let (limits, http) = (&component.limits().store, &component.limits().http);
    let fuel = limits
        .fuel
        .map_or_else(|| "unmetered".to_string(), |fuel| fuel.to_string());
    writeln!(
        out,
        "  limits:    timeout {}, memory {}, table elements {}, resources {}, \
         descriptors {}, host memory {}, instances {} (queue {}), request body {}, request head {}, response headers {}, \
         fuel {fuel}",
        format_duration(limits.timeout),
        format_size(u64::try_from(limits.max_memory_bytes).unwrap_or(u64::MAX)),
        limits.max_table_elements,
        limits.max_resources,
        limits.max_descriptors,
        format_size(u64::try_from(limits.max_host_memory).unwrap_or(u64::MAX)),
        http.instances,
        http.queue,
        format_size(http.max_request_body),
        http.max_request_head.map_or_else(
            || "as the server's".to_string(),
            |bytes| format_size(u64::try_from(bytes).unwrap_or(u64::MAX))
        ),
        http.max_response_headers,
    )?;
    writeln!(out, "  world:     {}", component.world())?;
    writeln!(
        out,
        "  imports:   {}",
        list(group_imports(&component.imports()))
    )?;
    Ok(())
}

/// `wasi:io/poll@0.2.0` and `wasi:io/streams@0.2.0` become
/// `wasi:io/{poll, streams}@0.2.0`, in first-seen order.
fn group_imports(imports: &[String]) -> Vec<String> {
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for import in imports {
        let (path, version) = import.split_once('@').unwrap_or((import, ""));
        let Some((package, interface)) = path.split_once('/') else {
            groups.push((import.clone(), String::new(), Vec::new()));
            continue;
        };
        match groups
            .iter_mut()
            .find(|(p, v, _)| p == package && v == version)
        {
            Some((_, _, interfaces)) => interfaces.push(interface.to_string()),
            None => groups.push((
                package.to_string(),
                version.to_string(),
                vec![interface.to_string()],
            )),
        }
    }
    groups
        .into_iter()
        .map(|(package, version, interfaces)| {
            let version = if version.is_empty() {
                String::new()
            } else {
                format!("@{version}")
            };
            match interfaces.as_slice() {
                [] => package,
                [one] => format!("{package}/{one}{version}"),
                many => format!("{package}/{{{}}}{version}", many.join(", ")),
            }
        })
        .collect()
}
