import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional, registerDecorator } from 'class-validator';
import { LABEL_KEY, labelsProblem, MAX_LABEL_VALUE_LENGTH, MAX_LABELS } from '../../jobs/job-labels';

/** A labels map (labelsProblem); with `nullable`, a merge patch's (null deletes a key). */
export function IsLabels(nullable = false): PropertyDecorator {
  return (object, propertyName) => {
    let problem = '';
    registerDecorator({
      name: 'isLabels',
      target: object.constructor,
      propertyName: propertyName as string,
      validator: {
        validate(value: unknown) {
          problem = labelsProblem(value, nullable) ?? '';
          return problem === '';
        },
        defaultMessage: () => `${propertyName as string} ${problem}`,
      },
    });
  };
}

export const LABELS_DESCRIPTION =
  `Up to ${MAX_LABELS} keys (\`${LABEL_KEY.source}\`) to strings of at most ${MAX_LABEL_VALUE_LENGTH} ` +
  "characters: the client's own, filtered on with `GET /jobs?label=key:value`.";

/** The body of POST /jobs/{id}/retry (optional). */
export class RetryBulkJobDto {
  @ApiPropertyOptional({
    description:
      "Retry the job's skipped items too (those a cancel left unstarted), not only its failed ones.",
    default: false,
    example: false,
  })
  @IsOptional()
  @IsBoolean()
  include_skipped?: boolean;
}

/** The body of PATCH /jobs/{id} (a JSON merge patch, RFC 7396): only labels can change. */
export class PatchBulkJobDto {
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string', nullable: true, maxLength: MAX_LABEL_VALUE_LENGTH },
    description:
      'Merged into the labels (RFC 7396): a string sets a key, null removes it, keys not named stay. The ' +
      `result may have at most ${MAX_LABELS} keys.`,
    example: { team: 'billing', ticket: null },
  })
  @IsLabels(true)
  labels: Record<string, string | null>;
}
