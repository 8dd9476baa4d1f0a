//! Phase one of loading: reads the TOML document and the environment into [`RawConfig`],
//! rejecting unknown keys (with a "did you mean") and values of the wrong TOML type, and
//! remembering where each value came from.

use std::collections::BTreeMap;

use super::{ConfigError, KEYS, KeyType, Origin, Problem, SUPABASE_KEY_ALIAS};
use crate::secret::Secret;

/// A value as read, before resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Integer(i64),
    Bool(bool),
    String(String),
    Secret(Secret),
}

/// One key's value and where it came from.
#[derive(Debug, Clone)]
pub struct Raw {
    pub value: RawValue,
    pub origin: Origin,
}

/// Phase one: what the file and the environment say, checked only for unknown keys and TOML
/// types.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// Values by dotted key (`telegram.api_id`).
    pub values: BTreeMap<String, Raw>,
    /// Sections present in the file, even empty (an empty `[supabase]` still selects Supabase).
    pub sections: Vec<String>,
}

impl RawConfig {
    /// Reads `text` (named `origin` in messages) and the environment through `env`.
    pub fn parse(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RawConfig, ConfigError> {
        let doc = toml_edit::ImDocument::parse(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: line_of(text, e.span().map_or(0, |s| s.start)),
            message: e.message().trim_end().to_owned(),
        })?;
        let mut raw = RawConfig::default();
        let mut problems = Vec::new();
        let here = |span: Option<std::ops::Range<usize>>| Origin::File {
            name: origin.to_owned(),
            line: line_of(text, span.map_or(0, |s| s.start)),
        };

        for (section, item) in doc.iter() {
            let section_span = doc.get_key_value(section).and_then(|(k, _)| k.span());
            if !KEYS.iter().any(|k| k.section == section) {
                let sections = KEYS.iter().map(|k| k.section);
                problems.push(Problem {
                    key: section.to_owned(),
                    origin: Some(here(section_span)),
                    message: unknown("section", section, sections, |s| format!("[{s}]")),
                });
                continue;
            }
            let Some(table) = item.as_table_like() else {
                problems.push(Problem {
                    key: section.to_owned(),
                    origin: Some(here(section_span)),
                    message: format!("expected a table [{section}], found {}", item.type_name()),
                });
                continue;
            };
            raw.sections.push(section.to_owned());
            for (name, item) in table.iter() {
                let span = table.get_key_value(name).and_then(|(k, _)| k.span());
                let dotted = format!("{section}.{name}");
                let Some(spec) = KEYS.iter().find(|k| k.section == section && k.name == name)
                else {
                    let names = KEYS.iter().filter(|k| k.section == section).map(|k| k.name);
                    problems.push(Problem {
                        key: dotted,
                        origin: Some(here(span)),
                        message: unknown("key", name, names, |n| format!("{section}.{n}")),
                    });
                    continue;
                };
                match from_toml(spec.ty, item) {
                    Ok(value) => {
                        raw.values.insert(
                            dotted,
                            Raw {
                                value,
                                origin: here(span),
                            },
                        );
                    }
                    Err(message) => problems.push(Problem {
                        key: dotted,
                        origin: Some(here(span)),
                        message,
                    }),
                }
            }
        }

        let lookup = |var: &str| env(var).filter(|v| !v.is_empty());
        for spec in KEYS {
            let dotted = format!("{}.{}", spec.section, spec.name);
            let mut found = lookup(spec.env).map(|v| (spec.env, v));
            if spec.env == "SUPABASE_SERVICE_ROLE_KEY"
                && let Some(alias) = lookup(SUPABASE_KEY_ALIAS)
            {
                match &found {
                    Some((_, primary)) if *primary != alias => problems.push(Problem {
                        key: dotted.clone(),
                        origin: Some(Origin::Env(SUPABASE_KEY_ALIAS)),
                        message: format!(
                            "{SUPABASE_KEY_ALIAS} and {} are both set and differ: unset one",
                            spec.env
                        ),
                    }),
                    Some(_) => {}
                    None => found = Some((SUPABASE_KEY_ALIAS, alias)),
                }
            }
            let Some((var, text)) = found else { continue };
            let origin = Origin::Env(var);
            match from_env(spec.ty, text) {
                Ok(value) => {
                    raw.values.insert(dotted, Raw { value, origin });
                }
                Err(message) => problems.push(Problem {
                    key: dotted,
                    origin: Some(origin),
                    message,
                }),
            }
        }

        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Warnings for environment variables named like a setting of a known section
/// (`GIFTD_TELEGRAM_...`) that is not one, with the closest real name. Other `GIFTD_` variables
/// (`GIFTD_CONFIG`, test tooling's `GIFTD_TEST_*`) are not giftd settings and pass silently.
pub fn unknown_env_warnings<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix("GIFTD_") else {
            continue;
        };
        if KEYS.iter().any(|k| k.env == name) {
            continue;
        }
        let Some(section) = KEYS.iter().map(|k| k.section).find(|s| {
            rest.strip_prefix(&s.to_uppercase())
                .is_some_and(|r| r.starts_with('_'))
        }) else {
            continue;
        };
        // Compare the key parts only: the shared `GIFTD_<SECTION>_` prefix would make every
        // name look close.
        let prefix = format!("GIFTD_{}_", section.to_uppercase());
        let key_part = &name[prefix.len()..];
        let known = KEYS
            .iter()
            .filter(|k| k.section == section)
            .filter_map(|k| k.env.strip_prefix(prefix.as_str()));
        let hint = unknown("setting", key_part, known, |k| format!("{prefix}{k}"));
        warnings.push(format!(
            "environment variable {name} is not a giftd setting and is ignored ({})",
            hint.trim_start_matches("unknown setting; ")
        ));
    }
    warnings.sort();
    warnings
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// "unknown key; did you mean `telegram.poll_interval`?" when a known name is close.
fn unknown<'a>(
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a str>,
    show: impl Fn(&str) -> String,
) -> String {
    let best = known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("unknown {what}; did you mean `{}`?", show(k)),
        None => format!("unknown {what}; see config.example.toml for every key"),
    }
}

fn from_toml(ty: KeyType, item: &toml_edit::Item) -> Result<RawValue, String> {
    let value = item.as_value();
    let found = || format!("found {}", item.type_name());
    Ok(match ty {
        KeyType::Integer => RawValue::Integer(
            value
                .and_then(|v| v.as_integer())
                .ok_or_else(|| format!("expected an integer, {}", found()))?,
        ),
        KeyType::Bool => RawValue::Bool(
            value
                .and_then(|v| v.as_bool())
                .ok_or_else(|| format!("expected true or false, {}", found()))?,
        ),
        KeyType::String => RawValue::String(
            value
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("expected a string, {}", found()))?
                .to_owned(),
        ),
        KeyType::Secret => RawValue::Secret(Secret::new(
            value
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("expected a string, {}", found()))?,
        )),
    })
}

fn from_env(ty: KeyType, text: String) -> Result<RawValue, String> {
    Ok(match ty {
        KeyType::Integer => RawValue::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("expected an integer, found {text:?}"))?,
        ),
        KeyType::Bool => RawValue::Bool(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("expected true or false, found {text:?}")),
        }),
        KeyType::String => RawValue::String(text),
        KeyType::Secret => RawValue::Secret(Secret::new(text)),
    })
}
