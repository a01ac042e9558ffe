"""API tokens (admin): create (the token is shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, VerifierDep, require_admin
from tastebud.api.models import TokenCreated, TokenIn, TokenList, TokenOut
from tastebud.store import TokenRecord

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], dependencies=[Depends(require_admin)])


def _token_out(record: TokenRecord) -> TokenOut:
    return {"name": record.name, "scope": record.scope, "createdAt": record.created_at}


@router.post("", status_code=201)
def create_token(body: TokenIn, engine: EngineDep) -> TokenCreated:
    """A new token; the secret is in this response only (the store keeps its hash)."""
    token = engine.create_token(body.name, scope=body.scope)
    record = engine.authenticate(token)
    assert record is not None
    return {**_token_out(record), "token": token}


@router.get("")
def list_tokens(engine: EngineDep) -> TokenList:
    return {"tokens": [_token_out(t) for t in engine.list_tokens()]}


@router.delete("/{name}", status_code=204)
def revoke_token(name: str, engine: EngineDep, verifier: VerifierDep) -> None:
    engine.revoke_token(name)
    verifier.forget()
