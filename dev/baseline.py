"""The straightforward implementation `make bench` compares against: the synchronous Firestore client in
plain `def` endpoints (FastAPI runs them in its thread pool), one read per request. Not part of the service."""

import os
from datetime import date

from fastapi import FastAPI, HTTPException, Response
from google.cloud import firestore
from pydantic import BaseModel

from app.birthdays import days_until_birthday, greeting
from app.health import LIVENESS_PATH


class Body(BaseModel):
    dateOfBirth: date  # noqa: N815 - the wire name


def create_baseline_app() -> FastAPI:
    users = firestore.Client(project=os.environ["BIRTHDAY_PROJECT_ID"]).collection(os.environ["BIRTHDAY_COLLECTION"])
    app = FastAPI()

    @app.put("/hello/{username}", status_code=204)
    def save(username: str, body: Body) -> Response:
        users.document(username).set({"dateOfBirth": body.dateOfBirth.isoformat()})
        return Response(status_code=204)

    @app.get("/hello/{username}")
    def greet(username: str) -> dict[str, str]:
        snapshot = users.document(username).get()
        if not snapshot.exists:
            raise HTTPException(404)
        born = date.fromisoformat(snapshot.get("dateOfBirth"))
        return {"message": greeting(username, days_until_birthday(born, date.today()))}

    @app.get(LIVENESS_PATH)
    def live() -> dict[str, str]:
        return {"status": "ok"}

    return app
