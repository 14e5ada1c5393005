//! Token validation: every algorithm the issue names, JWKS with key ids and
//! rotation, and each way a token is wrong refused with its typed error;
//! arbitrary strings never panic and are never accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plexspaces::security::{AuthMethod, JwtKey, JwtVerifier, TokenError};
use proptest::prelude::*;
use serde_json::json;
use std::time::{Duration, SystemTime};

const SECRET: &[u8] = b"an-hs256-secret-of-at-least-32-bytes!!";
const RSA_PRIVATE: &str = include_str!("fixtures/jwt_rs256_test_private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/jwt_rs256_test_public.pem");
const RSA_OTHER_PRIVATE: &str = include_str!("fixtures/jwt_rs256_other_private.pem");

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn at(offset: i64) -> u64 {
    (1_780_000_000 + offset) as u64
}

fn claims() -> serde_json::Value {
    json!({
        "sub": "alice", "iss": "https://issuer.test", "aud": "plexspaces",
        "exp": at(3600), "nbf": at(-60), "tenant": "acme", "roles": ["teller", "auditor"],
        "dept": "finance"
    })
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: &serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

struct Keys {
    es_private: String,
    es_public: String,
    es_raw: Vec<u8>,
    ed_private: String,
    ed_public: String,
    ed_raw: Vec<u8>,
}

fn keys() -> Keys {
    let es = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    Keys {
        es_private: es.serialize_pem(),
        es_public: es.public_key_pem(),
        es_raw: es.public_key_raw().to_vec(),
        ed_private: ed.serialize_pem(),
        ed_public: ed.public_key_pem(),
        ed_raw: ed.public_key_raw().to_vec(),
    }
}

fn verifier(k: &Keys) -> JwtVerifier {
    JwtVerifier::new()
        .issuer("https://issuer.test")
        .audience("plexspaces")
        .leeway(Duration::from_secs(30))
        .key(JwtKey::hs256(SECRET).unwrap().with_key_id("hs"))
        .unwrap()
        .key(
            JwtKey::rs256_pem(RSA_PUBLIC.as_bytes())
                .unwrap()
                .with_key_id("rs"),
        )
        .unwrap()
        .key(
            JwtKey::es256_pem(k.es_public.as_bytes())
                .unwrap()
                .with_key_id("es"),
        )
        .unwrap()
        .key(
            JwtKey::eddsa_pem(k.ed_public.as_bytes())
                .unwrap()
                .with_key_id("ed"),
        )
        .unwrap()
}

#[test]
fn each_algorithm_verifies_and_yields_the_principal() {
    let k = keys();
    let v = verifier(&k);
    let tokens = [
        (
            "hs",
            sign(
                Algorithm::HS256,
                Some("hs"),
                &EncodingKey::from_secret(SECRET),
                &claims(),
            ),
        ),
        (
            "rs",
            sign(
                Algorithm::RS256,
                Some("rs"),
                &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
                &claims(),
            ),
        ),
        (
            "es",
            sign(
                Algorithm::ES256,
                Some("es"),
                &EncodingKey::from_ec_pem(k.es_private.as_bytes()).unwrap(),
                &claims(),
            ),
        ),
        (
            "ed",
            sign(
                Algorithm::EdDSA,
                Some("ed"),
                &EncodingKey::from_ed_pem(k.ed_private.as_bytes()).unwrap(),
                &claims(),
            ),
        ),
    ];
    for (kid, token) in tokens {
        let p = v
            .verify(&format!("Bearer {token}"), now())
            .unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(p.subject, "alice");
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        assert_eq!(p.roles, ["auditor", "teller"], "sorted");
        assert_eq!(p.issuer.as_deref(), Some("https://issuer.test"));
        assert_eq!(p.claims["dept"], "finance");
        assert_eq!(
            p.method,
            AuthMethod::Jwt {
                key_id: Some(kid.into())
            }
        );
    }
    // Without a key id, the key of the token's algorithm is found.
    let no_kid = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET),
        &claims(),
    );
    assert!(v.verify(&no_kid, now()).is_ok());
}

#[test]
fn every_wrong_token_is_refused_with_its_typed_error() {
    let k = keys();
    let v = verifier(&k);
    let hs = EncodingKey::from_secret(SECRET);
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        change(&mut c);
        sign(Algorithm::HS256, Some("hs"), &hs, &c)
    };
    let valid = with(&|_| {});
    let tampered = {
        // Same signature, claims rewritten (another tenant).
        let parts: Vec<&str> = valid.split('.').collect();
        let mut c = claims();
        c["tenant"] = json!("globex");
        format!("{}.{}.{}", parts[0], B64.encode(c.to_string()), parts[2])
    };
    let alg_none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims().to_string())
    );
    let other_rsa = sign(
        Algorithm::RS256,
        Some("rs"),
        &EncodingKey::from_rsa_pem(RSA_OTHER_PRIVATE.as_bytes()).unwrap(),
        &claims(),
    );
    // HS256 signed with the RSA public key as the secret: the classic
    // confusion attack, refused before any signature check.
    let confused = sign(
        Algorithm::HS256,
        Some("rs"),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        &claims(),
    );
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(at(-31))),
            TokenError::Expired,
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(at(31))),
            TokenError::NotYetValid,
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.test")),
            TokenError::WrongIssuer,
        ),
        (
            "no issuer",
            with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            TokenError::WrongIssuer,
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
            TokenError::WrongAudience,
        ),
        (
            "no audience",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            TokenError::WrongAudience,
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            TokenError::MissingClaim("exp"),
        ),
        (
            "no subject",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            TokenError::MissingClaim("sub"),
        ),
        (
            "roles not strings",
            with(&|c| c["roles"] = json!([1, 2])),
            TokenError::MissingClaim("roles"),
        ),
        ("bad signature", other_rsa, TokenError::BadSignature),
        ("tampered claim", tampered, TokenError::BadSignature),
        (
            "unknown kid",
            sign(Algorithm::HS256, Some("nope"), &hs, &claims()),
            TokenError::UnknownKey("nope".into()),
        ),
        (
            "algorithm confusion",
            confused,
            TokenError::AlgorithmNotAllowed("HS256".into()),
        ),
        ("empty", String::new(), TokenError::Missing),
    ];
    for (what, token, expected) in cases {
        assert_eq!(v.verify(&token, now()), Err(expected), "{what}");
    }
    assert!(
        matches!(v.verify(&alg_none, now()), Err(TokenError::Malformed(_))),
        "alg none"
    );
    assert!(matches!(
        v.verify("a.b.c", now()),
        Err(TokenError::Malformed(_))
    ));
    let long = "x".repeat(plexspaces::security::TOKEN_LEN_MAX + 1);
    assert!(matches!(
        v.verify(&long, now()),
        Err(TokenError::TooLong(_))
    ));
    // Within the leeway both ways: accepted.
    assert!(
        v.verify(&with(&|c| c["exp"] = json!(at(-29))), now())
            .is_ok()
    );
    assert!(
        v.verify(&with(&|c| c["nbf"] = json!(at(29))), now())
            .is_ok()
    );
}

fn jwks(k: &Keys, kids: &[&str]) -> String {
    let keys: Vec<serde_json::Value> = kids
        .iter()
        .map(|kid| match *kid {
            "ed-1" => json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(&k.ed_raw), "kid": kid}),
            _ => json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&k.es_raw[1..33]), "y": B64.encode(&k.es_raw[33..]), "kid": kid, "alg": "ES256"}),
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

#[test]
fn jwks_keys_are_found_by_kid_and_rotate() {
    let k = keys();
    let mut v = JwtVerifier::new().audience("plexspaces");
    let ed = EncodingKey::from_ed_pem(k.ed_private.as_bytes()).unwrap();
    let es = EncodingKey::from_ec_pem(k.es_private.as_bytes()).unwrap();
    let by_ed = sign(Algorithm::EdDSA, Some("ed-1"), &ed, &claims());
    let by_es = sign(Algorithm::ES256, Some("es-2"), &es, &claims());
    v.set_jwks(&jwks(&k, &["ed-1"])).unwrap();
    assert!(v.verify(&by_ed, now()).is_ok());
    assert_eq!(
        v.verify(&by_es, now()),
        Err(TokenError::UnknownKey("es-2".into()))
    );
    // Rotation: both published, then the old one dropped.
    v.set_jwks(&jwks(&k, &["ed-1", "es-2"])).unwrap();
    assert!(v.verify(&by_ed, now()).is_ok() && v.verify(&by_es, now()).is_ok());
    v.set_jwks(&jwks(&k, &["es-2"])).unwrap();
    assert_eq!(
        v.verify(&by_ed, now()),
        Err(TokenError::UnknownKey("ed-1".into()))
    );
    assert!(v.verify(&by_es, now()).is_ok());
    // A key signed as another algorithm than its JWKS entry says: refused.
    let lying = sign(Algorithm::EdDSA, Some("es-2"), &ed, &claims());
    assert!(matches!(
        v.verify(&lying, now()),
        Err(TokenError::AlgorithmNotAllowed(_))
    ));
    // Documents this node cannot use are errors, not skipped keys.
    for bad in [
        "not json",
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#,
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#,
    ] {
        assert!(v.set_jwks(bad).is_err(), "{bad}");
    }
    assert!(
        JwtKey::hs256(b"short").is_err(),
        "short HMAC secrets are refused"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic_and_are_never_accepted(token in ".{0,300}") {
        let v = JwtVerifier::new()
            .key(JwtKey::hs256(SECRET).unwrap())
            .unwrap()
            .require_exp(false);
        prop_assert!(v.verify(&token, now()).is_err());
    }

    #[test]
    fn token_shaped_garbage_is_never_accepted(
        header in proptest::collection::vec(any::<u8>(), 0..80),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        sig in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let v = JwtVerifier::new()
            .key(JwtKey::hs256(SECRET).unwrap())
            .unwrap()
            .require_exp(false);
        let token = format!("{}.{}.{}", B64.encode(&header), B64.encode(&body), B64.encode(&sig));
        prop_assert!(v.verify(&token, now()).is_err());
    }

    #[test]
    fn a_valid_token_with_any_one_character_changed_is_refused(at in 0usize..400, with in 0u8..64) {
        let token = sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET), &claims());
        let v = JwtVerifier::new().key(JwtKey::hs256(SECRET).unwrap()).unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bytes = token.clone().into_bytes();
        let at = at % bytes.len();
        prop_assume!(bytes[at] != b'.' && bytes[at] != alphabet[with as usize]);
        bytes[at] = alphabet[with as usize];
        let changed = String::from_utf8(bytes).unwrap();
        // The last character of a segment carries unused bits: a change
        // there may decode to the same bytes, and then it is the same token.
        let same_bytes = changed.split('.').zip(token.split('.'))
            .all(|(a, b)| B64.decode(a).ok() == B64.decode(b).ok());
        prop_assert!(same_bytes || v.verify(&changed, now()).is_err());
    }
}
