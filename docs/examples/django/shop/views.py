"""mailproxy's delivery reports: {"delivery_report": [...]} in, {"ok": true} out."""

import hmac
import json
import logging

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

log = logging.getLogger("shop")


@csrf_exempt  # called by mailproxy, not a browser; authenticated by its bearer token
@require_POST
def proxy_sync(request):
    token = settings.MAILPROXY_SYNC_TOKEN
    given = request.headers.get("Authorization", "")
    if token and not hmac.compare_digest(given, f"Bearer {token}"):
        return JsonResponse({"ok": False, "error": "bad token"}, status=401)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"ok": False, "error": "not JSON"}, status=400)
    for entry in body.get("delivery_report", []):
        # Update your own records here (order mail sent, bounced, ...).
        log.info("report %s %s", entry["id"], sorted(entry))
    return JsonResponse({"ok": True})
