//! OpenSSL EC keys whose private half lives elsewhere (a TPM), so that OpenSSL's DTLS client
//! can sign its CertificateVerify (RFC 5246 §7.4.8, RFC 6347 §4.2.4) with a key it never sees.
//!
//! OpenSSL 3.0 offers no provider hook a Rust signer could answer, but a legacy `EC_KEY` that
//! carries its own `EC_KEY_METHOD` is "foreign" to the providers (`ossl_ec_key_is_foreign`):
//! every signature with it goes to the method's `sign_sig`, which here calls a Rust function
//! with the digest OpenSSL computed. PKCS#11 engines reach OpenSSL 3.0 the same way. Nothing
//! else changes: verification, key exchange and certificates stay with OpenSSL.
//!
//! The other crates of the suite forbid unsafe code; this one holds the few FFI calls this
//! needs (functions of libcrypto that the `openssl` crates do not bind), each block with the
//! reason it is sound.

use foreign_types::{ForeignType, ForeignTypeRef};
use libc::{c_int, c_long, c_uchar, c_uint, c_void};
use openssl::ec::{EcKey, EcKeyRef};
use openssl::error::ErrorStack;
use openssl::pkey::{HasPublic, PKey, Private};
use openssl::ssl::SslRef;
use openssl_sys::{BIGNUM, BN_CTX, CRYPTO_EX_DATA, EC_KEY, ECDSA_SIG};
use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Arc, OnceLock};

/// Signs a digest that OpenSSL computed (its length is the hash's), returning a DER
/// `Ecdsa-Sig-Value` (RFC 3279 §2.2.3), or `None` when it cannot; the reason is the
/// function's to report.
pub type SignDigest = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

/// `EC_KEY_METHOD` (opaque).
#[repr(C)]
struct EcKeyMethod {
    _opaque: [u8; 0],
}

type SignFn = unsafe extern "C" fn(
    c_int,
    *const c_uchar,
    c_int,
    *mut c_uchar,
    *mut c_uint,
    *const BIGNUM,
    *const BIGNUM,
    *mut EC_KEY,
) -> c_int;
type SignSetupFn =
    unsafe extern "C" fn(*mut EC_KEY, *mut BN_CTX, *mut *mut BIGNUM, *mut *mut BIGNUM) -> c_int;
type SignSigFn = unsafe extern "C" fn(
    *const c_uchar,
    c_int,
    *const BIGNUM,
    *const BIGNUM,
    *mut EC_KEY,
) -> *mut ECDSA_SIG;

// libcrypto (OpenSSL ≥ 1.1.0; deprecated but present in 3.x), linked through openssl-sys.
unsafe extern "C" {
    fn EC_KEY_OpenSSL() -> *const EcKeyMethod;
    fn EC_KEY_METHOD_new(meth: *const EcKeyMethod) -> *mut EcKeyMethod;
    fn EC_KEY_METHOD_get_sign(
        meth: *const EcKeyMethod,
        sign: *mut Option<SignFn>,
        sign_setup: *mut Option<SignSetupFn>,
        sign_sig: *mut Option<SignSigFn>,
    );
    fn EC_KEY_METHOD_set_sign(
        meth: *mut EcKeyMethod,
        sign: Option<SignFn>,
        sign_setup: Option<SignSetupFn>,
        sign_sig: Option<SignSigFn>,
    );
    fn EC_KEY_set_method(key: *mut EC_KEY, meth: *const EcKeyMethod) -> c_int;
    fn EC_KEY_set_ex_data(key: *mut EC_KEY, idx: c_int, arg: *mut c_void) -> c_int;
    fn EC_KEY_get_ex_data(key: *const EC_KEY, idx: c_int) -> *mut c_void;
}

/// `CRYPTO_EX_INDEX_EC_KEY` (openssl/crypto.h).
const CRYPTO_EX_INDEX_EC_KEY: c_int = 8;
/// `SSL_CTRL_SET_CLIENT_SIGALGS_LIST` (openssl/ssl.h), behind `SSL_set1_client_sigalgs_list`.
const SSL_CTRL_SET_CLIENT_SIGALGS_LIST: c_int = 102;

/// The process's method table and ex-data index, made once and never freed.
struct Hooks {
    /// `*const EC_KEY_METHOD`, as an address so that it may be shared between threads.
    method: usize,
    index: c_int,
}

/// What an external key holds in its ex data: a `Box` of this, so that the pointer is thin.
type Held = Arc<SignDigest>;

fn hooks() -> Result<&'static Hooks, ErrorStack> {
    static HOOKS: OnceLock<Option<Hooks>> = OnceLock::new();
    HOOKS
        .get_or_init(make_hooks)
        .as_ref()
        .ok_or_else(ErrorStack::get)
}

fn make_hooks() -> Option<Hooks> {
    openssl_sys::init();
    // SAFETY: registers an ex-data index for EC_KEY with callbacks of the types libcrypto
    // declares; `dup_held` and `free_held` only touch values this crate stored at the index.
    let index = unsafe {
        openssl_sys::CRYPTO_get_ex_new_index(
            CRYPTO_EX_INDEX_EC_KEY,
            0,
            ptr::null_mut(),
            None,
            Some(dup_held),
            Some(free_held),
        )
    };
    if index < 0 {
        return None;
    }
    // SAFETY: returns libcrypto's static default method table.
    let default = unsafe { EC_KEY_OpenSSL() };
    // SAFETY: copies the default table into a new one that this process owns (and keeps).
    let method = unsafe { EC_KEY_METHOD_new(default) };
    if method.is_null() {
        return None;
    }
    let (mut sign, mut sign_setup, mut sign_sig) = (None, None, None);
    // SAFETY: reads the default table's three functions into locals of the declared types.
    unsafe { EC_KEY_METHOD_get_sign(default, &mut sign, &mut sign_setup, &mut sign_sig) };
    // The default `sign` DER-encodes what `sign_sig` returns; there is no `sign_setup` (no
    // per-signature secret is precomputed for a key that is not here).
    // SAFETY: `method` is the table made above, not yet given to any key.
    unsafe { EC_KEY_METHOD_set_sign(method, sign, None, Some(sign_sig_hook)) };
    Some(Hooks {
        method: method as usize,
        index,
    })
}

/// An OpenSSL private key for `public` whose signatures `sign` makes. It holds no private
/// scalar: OpenSSL signs with it only through `sign` (over the digest it computed), and
/// `sign` is dropped with the last copy of the key.
pub fn external_ec_key<T: HasPublic>(
    public: &EcKeyRef<T>,
    sign: Arc<SignDigest>,
) -> Result<PKey<Private>, ErrorStack> {
    let hooks = hooks()?;
    let key = EcKey::from_public_key(public.group(), public.public_key())?;
    let held = Box::into_raw(Box::new(sign)).cast::<c_void>();
    // SAFETY: `key` is a valid EC_KEY that this function owns; the index is ours. On success
    // the key owns `held` and `free_held` releases it with the key.
    let stored = unsafe { EC_KEY_set_ex_data(key.as_ptr(), hooks.index, held) };
    if stored != 1 {
        // SAFETY: not stored, so still owned here, and made by `Box::into_raw` above.
        drop(unsafe { Box::from_raw(held.cast::<Held>()) });
        return Err(ErrorStack::get());
    }
    // SAFETY: the method table lives as long as the process; the key was made with the
    // default method, which has no `finish` to run.
    let set = unsafe { EC_KEY_set_method(key.as_ptr(), hooks.method as *const EcKeyMethod) };
    if set != 1 {
        return Err(ErrorStack::get());
    }
    // Assigned after the method is set, so that OpenSSL marks the key foreign.
    let pkey = PKey::from_ec_key(key)?;
    // SAFETY: a second reference to the live EVP_PKEY, owned by the value made below.
    if unsafe { openssl_sys::EVP_PKEY_up_ref(pkey.as_ptr()) } != 1 {
        return Err(ErrorStack::get());
    }
    // SAFETY: `PKey<Public>` and `PKey<Private>` are the same EVP_PKEY; the marker only
    // chooses what the `openssl` crate offers, and this key signs (through its method).
    Ok(unsafe { PKey::<Private>::from_ptr(pkey.as_ptr()) })
}

/// The signature algorithms the client offers for its own CertificateVerify
/// (`SSL_set1_client_sigalgs_list`), in OpenSSL's syntax (e.g. `c"ECDSA+SHA256"`): a key
/// that signs digests of one hash only (a TPM key with a fixed scheme) names that hash.
pub fn set_client_sigalgs(ssl: &mut SslRef, list: &CStr) -> Result<(), ErrorStack> {
    // SAFETY: `ssl` is a live SSL; this control reads the NUL-terminated string and copies
    // what it parsed.
    let set = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            SSL_CTRL_SET_CLIENT_SIGALGS_LIST,
            0,
            list.as_ptr().cast_mut().cast::<c_void>(),
        )
    };
    if set > 0 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// `sign_sig` of the method: the signature of `dgst` by the key's [`SignDigest`].
unsafe extern "C" fn sign_sig_hook(
    dgst: *const c_uchar,
    dgst_len: c_int,
    _kinv: *const BIGNUM,
    _r: *const BIGNUM,
    eckey: *mut EC_KEY,
) -> *mut ECDSA_SIG {
    let signed = catch_unwind(AssertUnwindSafe(|| {
        let hooks = hooks().ok()?;
        let len = usize::try_from(dgst_len).ok()?;
        if dgst.is_null() || eckey.is_null() {
            return None;
        }
        // SAFETY: OpenSSL passes the digest with its length, alive for this call.
        let digest = unsafe { std::slice::from_raw_parts(dgst, len) };
        // SAFETY: `eckey` is the live key being signed with; the index is ours.
        let held = unsafe { EC_KEY_get_ex_data(eckey, hooks.index) }.cast::<Held>();
        if held.is_null() {
            return None;
        }
        // SAFETY: a non-null value at our index is a `Box<Held>` that the key owns and frees
        // only with itself, and OpenSSL holds the key for this call.
        let sign = unsafe { &*held }.clone();
        let der = sign(digest)?;
        let der_len = c_long::try_from(der.len()).ok()?;
        let mut p = der.as_ptr();
        // SAFETY: reads at most `der_len` bytes from `p`, which points into `der`.
        let sig = unsafe { openssl_sys::d2i_ECDSA_SIG(ptr::null_mut(), &mut p, der_len) };
        (!sig.is_null()).then_some(sig)
    }));
    signed.ok().flatten().unwrap_or(ptr::null_mut())
}

/// Ex-data `dup`: a copied key (`EC_KEY_dup`) gets its own reference to the signer, so that
/// each copy frees only its own.
unsafe extern "C" fn dup_held(
    _to: *mut CRYPTO_EX_DATA,
    _from: *const CRYPTO_EX_DATA,
    from_d: *mut *mut c_void,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) -> c_int {
    if from_d.is_null() {
        return 0;
    }
    // SAFETY: libcrypto passes the address of the value it is about to copy.
    let value = unsafe { *from_d };
    if value.is_null() {
        return 1;
    }
    // SAFETY: a non-null value at our index is a live `Box<Held>` owned by the source key.
    let copy = Box::new(unsafe { &*value.cast::<Held>() }.clone());
    // SAFETY: libcrypto stores what `from_d` points to in the copy.
    unsafe { *from_d = Box::into_raw(copy).cast::<c_void>() };
    1
}

/// Ex-data `free`: releases the key's reference to its signer.
unsafe extern "C" fn free_held(
    _parent: *mut c_void,
    value: *mut c_void,
    _ad: *mut CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if value.is_null() {
        return;
    }
    // SAFETY: a non-null value at our index is a `Box<Held>` made by `Box::into_raw`, which
    // libcrypto frees exactly once, with its key.
    let held = unsafe { Box::from_raw(value.cast::<Held>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(held)));
}

#[cfg(test)]
mod tests;
