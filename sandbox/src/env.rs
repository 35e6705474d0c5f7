//! Which environment variables reach the sandbox.
//!
//! An allow-list (the basics every program expects, plus what the profile
//! names), and a deny rule that wins over it: a variable whose name looks like
//! it holds a secret never passes, even if a profile lists it.

use std::ffi::{OsStr, OsString};

/// Variables every command may see.
pub const BASE_ALLOW: &[&str] = &[
    "PATH",
    "HOME",
    "TERM",
    "COLORTERM",
    "LANG",
    "LANGUAGE",
    "USER",
    "LOGNAME",
    "SHELL",
    "TZ",
    "TMPDIR",
    "PWD",
    "NO_COLOR",
];

/// Whether a variable name looks like it carries a credential. Pure; matched
/// on the upper-cased name.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    const SUFFIXES: &[&str] = &[
        "_TOKEN",
        "_SECRET",
        "_KEY",
        "_PASSWORD",
        "_PASSWD",
        "_PASS",
        "_CREDENTIALS",
        "_AUTH",
        "_COOKIE",
        "_SESSION",
        // Request headers carry credentials (`OTEL_EXPORTER_OTLP_HEADERS=Authorization=…`).
        "_HEADERS",
    ];
    const PREFIXES: &[&str] = &[
        "AWS_",
        "AZURE_",
        "GOOGLE_APPLICATION_",
        "GCP_",
        "GH_",
        "GITHUB_",
        "GITLAB_",
        "NPM_",
        "DOCKER_",
        "VAULT_",
        "OPENAI_",
        "ANTHROPIC_",
        "HF_",
        "SSH_AUTH",
        "KUBECONFIG",
    ];
    const EXACT: &[&str] = &["TOKEN", "SECRET", "PASSWORD", "API_KEY", "APIKEY", "DATABASE_URL", "REDIS_URL"];
    SUFFIXES.iter().any(|s| n.ends_with(s))
        || PREFIXES.iter().any(|p| n.starts_with(p))
        || EXACT.contains(&n.as_str())
        || n.contains("SECRET")
        || n.contains("PASSWORD")
        || n.contains("TOKEN")
}

/// Whether `name` matches an allow-list entry: exact, or a prefix glob
/// ending in `*` (`LC_*`).
fn allowed(name: &str, allow: &[String]) -> bool {
    name.starts_with("LC_")
        || BASE_ALLOW.contains(&name)
        || allow.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => a == name,
        })
}

/// The environment the sandbox gets, from the caller's. Names that are not
/// UTF-8 never pass.
pub fn scrub(vars: impl IntoIterator<Item = (OsString, OsString)>, allow: &[String]) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(k, _)| {
            let Some(name) = OsStr::to_str(k) else { return false };
            allowed(name, allow) && !is_secret_name(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names_never_pass_even_when_allowed() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("AWS_SECRET_ACCESS_KEY", "k"),
            ("AWS_REGION", "eu"),
            ("MY_API_KEY", "k"),
            ("npm_config_cache", "/x"),
            ("LC_ALL", "C"),
            ("EDITOR", "vi"),
            ("DB_PASSWORD", "p"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let allow = vec![
            "GITHUB_TOKEN".to_owned(),
            "AWS_*".to_owned(),
            "MY_*".to_owned(),
            "EDITOR".to_owned(),
            "DB_*".to_owned(),
        ];
        let names: Vec<String> = scrub(vars, &allow).into_iter().map(|(k, _)| k.into_string().unwrap()).collect();
        assert_eq!(names, ["PATH", "LC_ALL", "EDITOR"]);
    }

    #[test]
    fn classifies_names() {
        for secret in [
            "GH_TOKEN",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "SECRET",
            "x_token",
            "SSH_AUTH_SOCK",
            "KUBECONFIG",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in ["PATH", "HOME", "TERM", "CARGO_HOME", "RUSTUP_TOOLCHAIN", "KEYBOARD_LAYOUT"] {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }
}
