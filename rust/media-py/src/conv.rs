//! Conversions shared by the binding: errors and PCM arrays.

use media_core::codec::Params;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pyo3::create_exception!(
    _native,
    MediaError,
    PyValueError,
    "Raised for malformed media input or an invalid media argument."
);

/// Maps a core error to `MediaError` (a `ValueError`) carrying its message.
pub fn err(e: media_core::Error) -> PyErr {
    MediaError::new_err(e.to_string())
}

/// Borrows a 1-D int16 numpy array, with a clear TypeError otherwise.
pub fn pcm<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray1<'py, i16>> {
    match obj.cast::<PyArray1<i16>>() {
        Ok(a) => Ok(a.readonly()),
        Err(_) => {
            let desc = match obj.getattr("dtype") {
                Ok(d) => format!("an array of dtype {d} with shape {}", obj.getattr("shape")?),
                Err(_) => format!("{}", obj.get_type().name()?),
            };
            Err(PyTypeError::new_err(format!(
                "{what} must be a 1-D numpy int16 array, got {desc}"
            )))
        }
    }
}

/// The contiguous samples of a borrowed array (copies if it is strided).
pub fn samples<'a>(a: &'a PyReadonlyArray1<'_, i16>) -> std::borrow::Cow<'a, [i16]> {
    match a.as_slice() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

pub fn array<'py>(py: Python<'py>, v: Vec<i16>) -> Bound<'py, PyArray1<i16>> {
    PyArray1::from_vec(py, v)
}

/// `**params` → codec parameters: ints and bools only.
pub fn params(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Params> {
    let mut p = Params::new();
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let key: String = k.extract()?;
            let val: i64 = v.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "codec parameter {key} must be an int or bool, got {}",
                    v.get_type()
                ))
            })?;
            p.insert(key, val);
        }
    }
    Ok(p)
}
