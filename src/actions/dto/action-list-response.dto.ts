import { ApiProperty } from '@nestjs/swagger';

export class ActionDescriptionDto {
  @ApiProperty({ example: 'noop' })
  name: string;

  @ApiProperty({ example: 'Does nothing and succeeds at once.' })
  description: string;

  @ApiProperty({ type: 'object', additionalProperties: true, description: 'JSON Schema of the params.' })
  params_schema: Record<string, unknown>;
}

export class ActionListResponseDto {
  @ApiProperty({ type: () => [ActionDescriptionDto] })
  items: ActionDescriptionDto[];
}
