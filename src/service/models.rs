//! `GET /v1/models` and `GET /v1/models/{id}`, served from the model table.

use http::Response;

use super::{Shared, json_response};
use crate::body::ResponseBody;
use crate::error::Error;
use crate::json;
use crate::routing::{MODELS_CREATED, Route};

fn write_model(out: &mut Vec<u8>, route: &Route) {
    out.extend_from_slice(b"{\"id\":");
    json::write_str(out, &route.alias);
    out.extend_from_slice(b",\"object\":\"model\",\"created\":");
    json::write_u64(out, MODELS_CREATED);
    out.extend_from_slice(b",\"owned_by\":");
    json::write_str(out, &route.owned_by);
    out.push(b'}');
}

/// `{"object":"list","data":[…]}`, sorted by alias.
pub fn list(shared: &Shared) -> Response<ResponseBody> {
    let routes = shared.models.routes();
    let mut out = Vec::with_capacity(64 + routes.len() * 96);
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for (i, route) in routes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_model(&mut out, route);
    }
    out.extend_from_slice(b"]}");
    json_response(out)
}

/// One model; clients percent-encode ids containing `/` or `:`, so the segment is decoded.
pub fn get(shared: &Shared, encoded_id: &str) -> Result<Response<ResponseBody>, Error> {
    let id = percent_encoding::percent_decode_str(encoded_id).decode_utf8_lossy();
    let route = shared
        .models
        .get(&id)
        .ok_or_else(|| Error::ModelNotFound(id.as_ref().into()))?;
    let mut out = Vec::with_capacity(128);
    write_model(&mut out, &route);
    Ok(json_response(out))
}
