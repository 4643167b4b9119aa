//! Just enough bencode for NG: a writer for requests and a reader for replies.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn dict(pairs: &[(&str, Value)]) -> Value {
        Value::Dict(pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// Decodes one value from the start of `buf`; returns it and the bytes consumed.
pub fn decode(buf: &[u8]) -> Result<(Value, usize), String> {
    let err = |m: &str| Err(format!("bencode: {m}"));
    match buf.first() {
        None => err("truncated"),
        Some(b'i') => {
            let end = buf.iter().position(|&c| c == b'e').ok_or("bencode: unterminated int")?;
            let n = std::str::from_utf8(&buf[1..end]).ok().and_then(|s| s.parse().ok());
            n.map(|n| (Value::Int(n), end + 1)).ok_or_else(|| "bencode: bad int".into())
        }
        Some(b'l') | Some(b'd') => {
            let is_dict = buf[0] == b'd';
            let (mut pos, mut items) = (1, Vec::new());
            while buf.get(pos) != Some(&b'e') {
                if pos >= buf.len() {
                    return err("unterminated list");
                }
                let (v, used) = decode(&buf[pos..])?;
                items.push(v);
                pos += used;
            }
            if !is_dict {
                return Ok((Value::List(items), pos + 1));
            }
            let mut d = BTreeMap::new();
            let mut it = items.into_iter();
            while let (Some(Value::Bytes(k)), Some(v)) = (it.next(), it.next()) {
                d.insert(k, v);
            }
            Ok((Value::Dict(d), pos + 1))
        }
        Some(c) if c.is_ascii_digit() => {
            let colon = buf.iter().position(|&c| c == b':').ok_or("bencode: no colon")?;
            let len: usize = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bencode: bad length")?;
            let start = colon + 1;
            if buf.len() < start + len {
                return err("truncated string");
            }
            Ok((Value::Bytes(buf[start..start + len].to_vec()), start + len))
        }
        Some(_) => err("unexpected byte"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = Value::dict(&[
            ("command", Value::str("offer")),
            ("n", Value::Int(-3)),
            ("replace", Value::List(vec![Value::str("origin")])),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, b"d7:command5:offer1:ni-3e7:replacel6:originee");
        assert_eq!(decode(&out).unwrap(), (v, out.len()));
    }
}
