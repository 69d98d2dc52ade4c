//! A small command-line parser: `--flag value` pairs, `--switch`es and positional arguments,
//! validated against the flags a subcommand declares, with errors that name the flag.

use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug)]
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
    pub positional: Vec<String>,
}

impl Args {
    /// `valued` flags take the next argument as their value; `switches` take none.
    pub fn parse(arguments: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut args = Args {
            values: HashMap::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut iter = arguments.iter();
        while let Some(argument) = iter.next() {
            if let Some(name) = argument.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (name, None),
                };
                if switches.contains(&name) && inline.is_none() {
                    args.switches.push(name.to_string());
                } else if valued.contains(&name) {
                    let value = match inline {
                        Some(v) => v,
                        None => iter
                            .next()
                            .ok_or_else(|| format!("--{name} needs a value"))?
                            .clone(),
                    };
                    args.values.insert(name.to_string(), value);
                } else {
                    return Err(format!("unknown flag --{name}"));
                }
            } else {
                args.positional.push(argument.clone());
            }
        }
        Ok(args)
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name} `{text}` is not a valid number")),
        }
    }

    pub fn optional_number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name)
            .map(|text| {
                text.parse()
                    .map_err(|_| format!("--{name} `{text}` is not a valid number"))
            })
            .transpose()
    }

    pub fn duration(&self, name: &str, default: &str) -> Result<Duration, String> {
        let text = self.get(name).unwrap_or(default);
        parse_duration(text)
            .ok_or_else(|| format!("--{name} `{text}` is not a duration (e.g. 10s, 500ms, 2m)"))
    }
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds; fractions allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_switches_and_positionals() {
        let args = Args::parse(
            &strings(&["--threads", "2", "--rate=100", "--no-pin", "a.hgrm"]),
            &["threads", "rate"],
            &["no-pin"],
        )
        .unwrap();
        assert_eq!(args.number("threads", 1usize), Ok(2));
        assert_eq!(args.optional_number::<u64>("rate"), Ok(Some(100)));
        assert!(args.switch("no-pin"));
        assert_eq!(args.positional, ["a.hgrm"]);
        assert!(Args::parse(&strings(&["--bogus"]), &[], &[])
            .unwrap_err()
            .contains("--bogus"));
        assert!(Args::parse(&strings(&["--threads"]), &["threads"], &[])
            .unwrap_err()
            .contains("needs a value"));
        let bad = Args::parse(&strings(&["--threads", "x"]), &["threads"], &[]).unwrap();
        assert!(bad.number("threads", 1usize).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3 days"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
