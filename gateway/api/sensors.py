"""/api/v1/sensors: the pack sensors and the health the sensor service reports (read-only)."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import sensor_definitions as sensors
from nameko_services.domain.db import transaction

from ..app import ctx
from ..auth import permission, principal
from ..http import one, page, page_args, path_id
from ..query_args import text_arg
from .openapi import returns

bp = Blueprint("sensors", __name__)


@bp.get("/api/v1/sensors")
@permission("read")
@returns("Sensor", many=True)
def list_sensors():
    """The caller's and system pack sensors with their health (?pack=)."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = sensors.list_sensors(conn, principal().tenant_id,
                                            pack_ref=text_arg("pack"),
                                            limit=limit, offset=offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/sensors/<sensor_id>")
@permission("read")
@returns("Sensor")
def get_sensor(sensor_id: str):
    """One sensor with its health."""
    with transaction(ctx().engine) as conn:
        row = sensors.get(conn, principal().tenant_id, path_id(sensor_id, "Sensor"))
    return one(sensors.to_api(row))
