"""MLflow clients expect experiment "0" (Default) to exist before they log anything."""

from django.db import migrations
from django.utils import timezone


def create_default_experiment(apps, schema_editor):
    Experiment = apps.get_model("tracking", "Experiment")
    Experiment.objects.get_or_create(
        pk=0,
        defaults={
            "name": "Default",
            "artifact_location": "mlflow-artifacts:/0",
            "created_at": timezone.now(),
        },
    )


class Migration(migrations.Migration):
    dependencies = [("tracking", "0001_initial")]

    operations = [migrations.RunPython(create_default_experiment, migrations.RunPython.noop)]
