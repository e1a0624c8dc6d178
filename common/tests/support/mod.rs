//! Helpers shared by integration tests.

use ciborium::Value;

/// `cose` (a tagged COSE_Sign1) with `edit` applied to the certificates of its unprotected
/// x5bag (label 32, an array). The unprotected header is not signed (RFC 9052 §4.4): the
/// signature still verifies.
pub fn edit_x5bag(cose: &[u8], edit: impl FnOnce(&mut Vec<Value>)) -> Vec<u8> {
    let Ok(Value::Tag(18, inner)) = ciborium::de::from_reader::<Value, _>(cose) else {
        panic!("not a tagged COSE_Sign1")
    };
    let Value::Array(mut items) = *inner else {
        panic!("COSE_Sign1 is not an array")
    };
    let Value::Map(unprotected) = &mut items[1] else {
        panic!("no unprotected map")
    };
    let (_, Value::Array(bag)) = unprotected
        .iter_mut()
        .find(|(k, _)| *k == Value::Integer(32.into()))
        .expect("an x5bag")
    else {
        panic!("the x5bag is not an array")
    };
    edit(bag);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Tag(18, Box::new(Value::Array(items))), &mut out)
        .expect("encode");
    out
}
